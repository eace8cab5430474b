//! One QEMU that a test starts and talks to itself (the pair autoconv joins is
//! [`super::qemu_pair`]): `qemu-system-x86_64 ARGS` with its QMP socket and COM1 file in a
//! directory of its own, killed and removed when dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use autoconv::qemu::process::{find_binary, QemuProcess, RunDir};
use autoconv::qemu::qmp::QmpClient;

/// The running QEMU.
pub struct QemuVm {
    /// The process, its QMP socket and its COM1 file.
    pub qemu: QemuProcess,
    // Last: dropped after the QEMU whose sockets it holds.
    _dir: RunDir,
}

impl QemuVm {
    /// Start QEMU with `args` and wait until its QMP socket listens.
    pub fn start(args: &[&str]) -> QemuVm {
        let dir = RunDir::new().unwrap();
        let binary = find_binary("qemu-system-x86_64").unwrap();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut qemu = QemuProcess::spawn("source", &binary, &args, dir.path()).unwrap();
        qemu.wait_for_socket(Duration::from_secs(30)).unwrap();
        QemuVm { qemu, _dir: dir }
    }

    /// Start QEMU with `args -kernel IMAGE` and wait for the guest's first COM1 output: an
    /// autoconv image's 32-bit multiboot start runs emulated here and takes 4-15 s.
    pub fn boot(image: &Path, args: &[&str]) -> QemuVm {
        let image = image.to_str().unwrap();
        let mut vm = QemuVm::start(&[args, &["-kernel", image]].concat());
        let t0 = Instant::now();
        while vm.qemu.serial_len() == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "no COM1 output from the guest within 90 s"
            );
            vm.qemu.check_alive("booting").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        vm
    }

    /// Its QMP socket's path, as `--qmp` takes it.
    pub fn qmp_arg(&self) -> &str {
        self.qemu.qmp_path.to_str().unwrap()
    }

    /// A client on its QMP socket (the one client QEMU serves there at a time).
    pub fn qmp(&self) -> QmpClient {
        QmpClient::connect(&self.qemu.qmp_path, Duration::from_secs(10)).unwrap()
    }
}

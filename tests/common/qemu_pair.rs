//! Two QEMUs as a user starts them for a migration that autoconv only joins: a source with a
//! second QMP socket (the user's client holds the first), and a destination on `-incoming`.

use std::path::PathBuf;
use std::time::Duration;

use autoconv::qemu::process::{find_binary, QemuProcess, RunDir};
use autoconv::qemu::qmp::QmpClient;

/// The running pair; both QEMUs are killed and their directory removed when it is dropped.
pub struct QemuPair {
    /// The source, booted from the image.
    pub src: QemuProcess,
    /// The destination, waiting on [`QemuPair::uri`].
    pub dst: QemuProcess,
    /// The source's second QMP socket, the one autoconv attaches to.
    pub second_qmp: PathBuf,
    /// `tcp:127.0.0.1:PORT`, where the destination listens.
    pub uri: String,
    // Last: dropped after the QEMUs whose sockets it holds.
    _dir: RunDir,
}

impl QemuPair {
    /// Start both on `image` in 64 MiB with KVM, and wait until every socket is there.
    pub fn start(image: &str) -> QemuPair {
        let dir = RunDir::new().unwrap();
        let qemu = find_binary("qemu-system-x86_64").unwrap();
        let second_qmp = dir.path().join("autoconv.qmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = format!("tcp:127.0.0.1:{port}");
        let base: Vec<String> = [
            "-enable-kvm",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "64M",
            "-kernel",
            image,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut src_args = base.clone();
        src_args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", second_qmp.display()),
        ]);
        let mut src = QemuProcess::spawn("source", &qemu, &src_args, dir.path()).unwrap();
        let mut dst_args = base;
        dst_args.extend(["-incoming".into(), uri.clone()]);
        let mut dst = QemuProcess::spawn("destination", &qemu, &dst_args, dir.path()).unwrap();
        src.wait_for_socket(Duration::from_secs(20)).unwrap();
        dst.wait_for_socket(Duration::from_secs(20)).unwrap();
        while !second_qmp.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        QemuPair {
            src,
            dst,
            second_qmp,
            uri,
            _dir: dir,
        }
    }

    /// The user's own client, on the source's first QMP socket.
    pub fn user(&self) -> QmpClient {
        QmpClient::connect(&self.src.qmp_path, Duration::from_secs(10)).unwrap()
    }

    /// The second socket's path, as `record --qmp` takes it.
    pub fn second_qmp_arg(&self) -> &str {
        self.second_qmp.to_str().unwrap()
    }
}

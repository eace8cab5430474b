//! `record --virsh DOMAIN` against a real libvirtd: libvirt owns a managed VM's QMP socket, so
//! autoconv polls `query-migrate` through `virsh qemu-monitor-command`. A transient domain
//! boots an autoconv image under QEMU (libvirt's own command line, sandbox included), and the
//! migration goes to a TCP sink here (a destination QEMU would need libvirt's exact devices;
//! QEMU's sandbox forbids `exec:`). Needs root, KVM, QEMU and a running libvirtd
//! (`.ci/run` installs and starts it).

mod common;
use common::prereq::kvm_with_tools;
use common::require::{decide, required};
use common::{autoconv, repo, text};

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use autoconv::guest_image::{build_image, GuestSpec};
use serde_json::Value;

const CONNECT: &str = "qemu:///system";

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .arg("-c")
        .arg(CONNECT)
        .args(args)
        .output()
        .expect("run virsh")
}

/// Destroys the transient domain whatever the test's outcome.
struct Domain(String);

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
    }
}

fn domain_xml(name: &str, kernel: &Path, serial: &Path) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{}</kernel></os>\
         <devices><serial type='file'><source path='{}'/></serial>\
         <memballoon model='none'/></devices></domain>",
        kernel.display(),
        serial.display()
    )
}

#[test]
fn record_virsh_records_a_libvirt_domains_migration() {
    let test = "record_virsh_records_a_libvirt_domains_migration";
    let Some(_kvm) = kvm_with_tools(test, &["virsh", "qemu-system-x86_64"]) else {
        return;
    };
    let reachable = virsh(&["uri"]);
    let missing = (!reachable.status.success()).then(|| {
        format!(
            "libvirtd not reachable at {CONNECT} (start it: virtlogd -d; libvirtd -d): {}",
            String::from_utf8_lossy(&reachable.stderr).trim()
        )
    });
    if !decide(test, missing, required()) {
        return;
    }
    // Under libvirt's images directory: its QEMU runs as libvirt-qemu, which libvirt lets in
    // there (and labels the files it is given).
    let images = Path::new("/var/lib/libvirt/images");
    std::fs::create_dir_all(images).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("autoconv-test-")
        .tempdir_in(images)
        .unwrap();
    let kernel = dir.path().join("seq.img");
    let spec = GuestSpec {
        wss_bytes: 16 << 20,
        ..GuestSpec::default()
    };
    std::fs::write(&kernel, build_image(&spec).unwrap()).unwrap();
    let serial = dir.path().join("serial.txt");
    let xml = dir.path().join("dom.xml");
    let name = format!("autoconv-test-{}", std::process::id());
    std::fs::write(&xml, domain_xml(&name, &kernel, &serial)).unwrap();
    let o = virsh(&["create", xml.to_str().unwrap()]);
    assert!(o.status.success(), "virsh create: {}", text(&o));
    let _domain = Domain(name.clone());

    // The workload runs once the guest writes its markers (its 32-bit boot path is emulated
    // CPL0 here: seconds).
    let t0 = Instant::now();
    while std::fs::metadata(&serial).map_or(0, |m| m.len()) < 64 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the guest wrote no COM1 markers in 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A destination that reads and discards the stream.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let sunk = std::thread::spawn(move || {
        let (mut c, _) = sink.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });

    for cmd in [
        r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"auto-converge","state":true}]}}"#,
        r#"{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":33554432}}"#,
    ] {
        let o = virsh(&["qemu-monitor-command", &name, cmd]);
        assert!(o.status.success(), "{cmd}: {}", text(&o));
    }
    let out = tempfile::tempdir().unwrap();
    let rec = out.path().join("rec");
    let uri = format!("tcp:127.0.0.1:{port}");
    let o = autoconv(
        &[
            "record",
            "--virsh",
            &name,
            "--migrate",
            &uri,
            "--out",
            rec.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sunk_bytes = sunk.join().unwrap();

    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["backend"], "qemu");
    assert_eq!(s["status"], "completed", "{s}");
    // The figures are QEMU's own final reply's.
    let q = &s["query-migrate"];
    assert_eq!(s["total_time_ms"], q["total-time"], "{s}");
    assert_eq!(s["transferred_bytes"], q["ram"]["transferred"], "{s}");
    // Every byte QEMU counted went through the sink (the stream also carries headers and
    // device state).
    let transferred = s["transferred_bytes"].as_u64().unwrap();
    assert!(
        transferred > 64 << 20 && transferred <= sunk_bytes,
        "{transferred} counted, {sunk_bytes} received"
    );
    // A 16 MiB writer at 32 MiB/s needs the throttle: QEMU's staircase, 20 then +10 each step
    // up to max-cpu-throttle (99).
    let steps: Vec<u64> = s["throttle_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(!steps.is_empty(), "no throttle step: {s}");
    let qemu: Vec<u64> = (0..steps.len() as u64)
        .map(|k| (20 + 10 * k).min(99))
        .collect();
    assert_eq!(steps, qemu, "{s}");
    // Polled through virsh the whole time (each poll forks virsh: fewer than QMP's 10/s).
    let polls = std::fs::read_to_string(rec.join("query-migrate.jsonl")).unwrap();
    assert!(polls.lines().count() >= 3, "{polls}");
}

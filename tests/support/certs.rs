//! Test credentials in QEMU's tls-creds-x509 layout, made with rcgen: a CA, a server
//! certificate for localhost and 127.0.0.1, a client certificate. Shared by the TLS tests and
//! the kvm_migration bench (`#[path]`-included).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// Write ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem into
/// `dir` (created), all from a fresh CA named `ca_name`.
pub fn write_creds(dir: &Path, ca_name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
    for (role, names, eku) in [
        (
            "server",
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["autoconv-source".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("autoconv test {role}"));
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{role}-cert.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{role}-key.pem")), key.serialize_pem()).unwrap();
    }
}

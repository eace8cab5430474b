//! Command-line front ends. Each file holds one family's clap argument structs and handlers;
//! `main.rs` only wires them.

pub mod kvm;

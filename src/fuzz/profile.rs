//! Fuzz target: the profile CSV reader (and what the simulator asks of a profile read),
//! seeded with every shipped profile.

use std::path::Path;

use rand_chacha::ChaCha8Rng;

use super::{Features, Target};
use crate::report::profile::Profile;

/// The profile CSV reader.
pub struct ProfileCsv {
    seeds: Vec<Vec<u8>>,
}

impl ProfileCsv {
    /// Seeds: `root/scenarios/profiles/*.csv`.
    pub fn new(root: &Path) -> ProfileCsv {
        ProfileCsv {
            seeds: super::scenario::read_dir_files(&root.join("scenarios/profiles"), "csv"),
        }
    }
}

const DICTIONARY: &[&str] = &[
    ",",
    "\n",
    "\"",
    "throttle_pct",
    "dirty_pages_s",
    "interval_ms",
    "page_size_bytes",
    "memory_bytes",
    "vcpus",
    "source",
    ",,",
    "\r\n",
    "-",
    ".",
    "e",
];

impl Target for ProfileCsv {
    fn name(&self) -> &'static str {
        "profile"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let Ok(text) = std::str::from_utf8(input) else {
            f.add("not utf-8");
            return;
        };
        match Profile::parse("fuzz.csv", text) {
            Ok(p) => {
                f.add("parsed");
                f.add(&format!("rows {}", p.rows.len().min(16)));
                // What the simulator and `plot` compute from a profile must hold for any
                // profile the reader accepts.
                for pct in [0.0, 37.5, 99.0, 150.0] {
                    let d = p.dirty_pages_s_at(pct);
                    f.add(if d.is_finite() {
                        "finite rate"
                    } else {
                        "non-finite rate"
                    });
                }
                let v = p.verdict(125e6, 50);
                f.add(&format!("verdict {}", v.settles_at_pct.is_some()));
                f.add(&format!("interval {}", p.interval_ms().min(10_000) / 500));
            }
            Err(e) => f.error("profile", &e.to_string(), ""),
        }
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        super::text::mutate(input, rng, DICTIONARY)
    }
}

//! Fuzz target: the scenario reader (TOML text to a validated scenario), seeded with every
//! shipped scenario.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use super::{Features, Target};
use crate::scenario::ScenarioSource;

/// The scenario reader.
pub struct ScenarioText {
    seeds: Vec<Vec<u8>>,
    /// Where the input pretends to live (profiles it names resolve from there).
    path: String,
}

impl ScenarioText {
    /// Seeds: `root/scenarios/*.toml`.
    pub fn new(root: &Path) -> ScenarioText {
        let dir = root.join("scenarios");
        ScenarioText {
            seeds: read_dir_files(&dir, "toml"),
            path: dir.join("fuzz.toml").display().to_string(),
        }
    }
}

/// Every file in `dir` ending in `.ext`, sorted by name.
pub fn read_dir_files(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

const DICTIONARY: &[&str] = &[
    "[[region]]\n",
    "[guest]\n",
    "[host]\n",
    "[link]\n",
    "[migration]\n",
    "memory = ",
    "size = ",
    "pattern = \"profile\"\n",
    "pattern = \"hotcold\"\n",
    "profile = \"profiles/kvm-random.csv\"\n",
    "profile_access = \"hotcold\"\n",
    "hot_size = ",
    "dirty_rate = ",
    "bandwidth = ",
    "name = \"../x\"\n",
    " = ",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    "GiB",
    "MiB/s",
    "%",
];

impl Target for ScenarioText {
    fn name(&self) -> &'static str {
        "scenario"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let Ok(text) = std::str::from_utf8(input) else {
            f.add("not utf-8");
            return;
        };
        match ScenarioSource::parse(&self.path, "fuzz", text).and_then(|s| s.build(&[])) {
            Ok(sc) => {
                f.add("built");
                f.add(&format!("regions {}", sc.regions.len().min(8)));
                f.add(&format!(
                    "pages log2 {}",
                    64 - sc.total_pages().leading_zeros()
                ));
            }
            // No echo candidates: the one message that echoes a name bare (a profile that
            // cannot be read) is blanked by its template, and candidates taken from the
            // mutated text (a profile = "a scenario with") would blank the message's own words.
            Err(e) => f.error("scenario", &e.to_string(), ""),
        }
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        super::text::mutate(input, rng, DICTIONARY)
    }
}

//! The batch-system files under deploy/ do what they say: their command lines, run here with the
//! variables Slurm and Kubernetes would set, produce slices that `merge` joins into exactly the
//! runs.csv of the same sweep run unsharded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory laid out as the jobs expect their working directory: scenarios/ there.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autoconv-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    for entry in std::fs::read_dir(common::repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.join("scenarios").join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// PATH with the autoconv under test first, as the job's image or module would provide it.
fn path_with_autoconv() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_autoconv")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn run_shell(program: &str, args: &[&str], cwd: &Path, vars: &[(&str, String)]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("PATH", path_with_autoconv())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} with {vars:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `--grid` arguments of a job's command line, to run the same sweep unsharded.
fn grids(script: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    let grids: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "--grid")
        .map(|w| w[1].to_string())
        .collect();
    assert!(!grids.is_empty(), "no --grid in {script}");
    grids
}

/// runs.csv of the unsharded sweep with these grids.
fn unsharded(dir: &Path, grids: &[String]) -> Vec<u8> {
    let mut args = vec!["sweep", "scenarios/big.toml", "--out", "whole"];
    for g in grids {
        args.extend(["--grid", g.as_str()]);
    }
    let out = common::autoconv(&args, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("whole/runs.csv")).unwrap()
}

/// The value of `#SBATCH --NAME=VALUE` in a batch script.
fn sbatch_option<'a>(script: &'a str, name: &str) -> &'a str {
    let prefix = format!("#SBATCH --{name}=");
    script
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} in the script"))
        .trim()
}

#[test]
fn the_slurm_array_job_and_its_merge_give_the_unsharded_sweep() {
    let deploy = common::repo().join("deploy/slurm");
    let sweep = deploy.join("sweep.sbatch");
    let script = std::fs::read_to_string(&sweep).unwrap();
    // Every task of the array the script asks for, with the variables Slurm sets in each.
    let array = sbatch_option(&script, "array");
    let (min, max) = array.split_once('-').expect("--array=MIN-MAX");
    let (min, max): (usize, usize) = (min.parse().unwrap(), max.parse().unwrap());
    let dir = workdir("slurm");
    for id in min..=max {
        let vars = [
            ("SLURM_ARRAY_TASK_ID", id.to_string()),
            ("SLURM_ARRAY_TASK_MIN", min.to_string()),
            ("SLURM_ARRAY_TASK_MAX", max.to_string()),
            ("SLURM_ARRAY_TASK_STEP", "1".to_string()),
            ("SLURM_ARRAY_TASK_COUNT", (max - min + 1).to_string()),
            ("SLURM_CPUS_PER_TASK", "1".to_string()),
        ];
        run_shell("bash", &[sweep.to_str().unwrap()], &dir, &vars);
    }
    run_shell(
        "bash",
        &[deploy.join("merge.sbatch").to_str().unwrap()],
        &dir,
        &[],
    );
    let merged = std::fs::read(dir.join("results/big.csv")).unwrap();
    assert_eq!(
        merged,
        unsharded(&dir, &grids(&script)),
        "merged slices differ from the unsharded sweep"
    );
    assert!(dir.join("results/big-combos.csv").is_file());
    // Each task said which slice it took and why.
    let json =
        std::fs::read_to_string(dir.join(format!("results/big-shard-{min}/sweep.json"))).unwrap();
    assert!(
        json.contains(&format!("\"shard\": \"1/{}\"", max - min + 1)),
        "{json}"
    );
    assert!(json.contains("Slurm array task"), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shell script of a manifest's `args: - |` block.
fn container_script(manifest: &str) -> String {
    let lines: Vec<&str> = manifest.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "- |")
        .expect("a `- |` block under args");
    let indent = lines[start].len() - lines[start].trim_start().len();
    lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_indexed_job_and_its_merge_give_the_unsharded_sweep() {
    let deploy = common::repo().join("deploy/kubernetes");
    let manifest = std::fs::read_to_string(deploy.join("sweep.yaml")).unwrap();
    assert!(manifest.contains("completionMode: Indexed"));
    let completions: usize = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions:"))
        .expect("spec.completions")
        .trim()
        .parse()
        .unwrap();
    let script = container_script(&manifest);
    let dir = workdir("k8s");
    // Pods may run in any order; the slices do not depend on it.
    for index in (0..completions).rev() {
        run_shell(
            "/bin/sh",
            &["-c", &script],
            &dir,
            &[("JOB_COMPLETION_INDEX", index.to_string())],
        );
    }
    let merge = container_script(&std::fs::read_to_string(deploy.join("merge.yaml")).unwrap());
    run_shell("/bin/sh", &["-c", &merge], &dir, &[]);
    let merged = std::fs::read(dir.join("results/big.csv")).unwrap();
    assert_eq!(
        merged,
        unsharded(&dir, &grids(&script)),
        "merged slices differ from the unsharded sweep"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shard_auto_outside_a_batch_job_says_what_it_needs() {
    let dir = workdir("noenv");
    let out = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args([
            "sweep",
            "scenarios/heavy.toml",
            "--grid",
            "cpu-throttle-initial=10:30:10",
        ])
        .args(["--shard", "auto", "--no-out"])
        .current_dir(&dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--shard auto: auto needs a Slurm job array"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

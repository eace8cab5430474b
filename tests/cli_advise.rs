//! `autoconv advise`: the "done when" cases, through the command line.

mod common;
use common::{autoconv, repo, text};

/// `autoconv ARGS` in the repository, which must succeed, its stdout parsed as JSON.
fn json_ok(args: &[&str]) -> serde_json::Value {
    let o = autoconv(args, &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    json(&o)
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json output does not parse ({e}): {}", text(o)))
}

#[test]
fn heavy_within_70_pct_is_faster_than_qemus_defaults_and_ready_to_apply() {
    let v = json_ok(&[
        "advise",
        "scenarios/heavy.toml",
        "--max-throttle",
        "70",
        "--json",
    ]);
    assert_eq!(v["format_version"], 1);
    let rec = &v["recommended"];
    let run = &rec["run"];
    assert_eq!(run["converged"], true);
    assert!(run["max_throttle_pct"].as_u64().unwrap() <= 70);
    let t = run["total_time_ms"].as_u64().unwrap();
    let defaults = v["qemu_defaults"]["run"]["total_time_ms"].as_u64().unwrap();
    assert_eq!(defaults, 64_427);
    assert!(t < defaults, "{t} ms vs QEMU's defaults {defaults} ms");
    assert!(v["policies_evaluated"].as_u64().unwrap() > 9801);
    // The QMP forms are real JSON commands with the recommended values.
    let qmp = v["apply"]["qmp"].as_array().unwrap();
    assert_eq!(qmp[0]["execute"], "migrate-set-capabilities");
    assert_eq!(qmp[1]["execute"], "migrate-set-parameters");
    let params = &rec["policy"]["parameters"];
    assert_eq!(
        qmp[1]["arguments"]["cpu-throttle-initial"],
        params["cpu-throttle-initial"]
    );
    assert_eq!(
        qmp[1]["arguments"]["max-cpu-throttle"],
        params["max-cpu-throttle"]
    );
    let virsh = v["apply"]["virsh"].as_array().unwrap();
    let line = virsh.last().unwrap().as_str().unwrap();
    assert!(
        line.contains(&format!(
            "--auto-converge-initial {}",
            params["cpu-throttle-initial"]
        )),
        "{line}"
    );

    // The text form prints the three forms.
    let o = autoconv(
        &[
            "advise",
            "scenarios/heavy.toml",
            "--max-throttle",
            "70",
            "--seeds",
            "2",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "Pareto front",
        "QEMU's defaults",
        "Recommended",
        "\"execute\":\"migrate-set-parameters\"",
        "migrate_set_capability auto-converge on",
        "migrate_set_parameter cpu-throttle-initial",
        "virsh migrate --live DOMAIN DESTINATION-URI --auto-converge --auto-converge-initial",
        "give the same result",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn heavy_within_60_pct_says_none_converges_and_what_would() {
    let o = autoconv(
        &[
            "advise",
            "scenarios/heavy.toml",
            "--max-throttle",
            "60",
            "--seeds",
            "1",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("No policy converges within the limits (max throttle <= 60 %)"),
        "{out}"
    );
    assert!(out.contains("What would converge"), "{out}");
    assert!(out.contains("downtime-limit="), "{out}");
    let o = autoconv(
        &[
            "advise",
            "scenarios/heavy.toml",
            "--max-throttle",
            "60",
            "--seeds",
            "1",
            "--json",
        ],
        &repo(),
    );
    let v = json(&o);
    assert!(v["recommended"].is_null());
    let found = &v["rescue"]["downtime_limit_ms"];
    assert!(found["value"].as_u64().unwrap() > 300);
    assert_eq!(found["run"]["converged"], true);
    assert!(found["run"]["max_throttle_pct"].as_u64().unwrap() <= 60);
}

#[test]
fn dma_says_throttling_cannot_help() {
    let o = autoconv(&["advise", "scenarios/dma.toml", "--seeds", "1"], &repo());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Throttling cannot help"), "{out}");
    assert!(out.contains("DMA-bound"), "{out}");
    assert!(out.contains("max-bandwidth="), "{out}");
}

#[test]
fn front_plot_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("front.png");
    let o = autoconv(
        &[
            "advise",
            "scenarios/light.toml",
            "--seeds",
            "1",
            "-o",
            png.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");

    let o = autoconv(
        &["advise", "scenarios/heavy.toml", "--deadline", "soon"],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = autoconv(
        &["advise", "scenarios/heavy.toml", "--max-throttle", "100"],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = autoconv(
        &[
            "advise",
            "scenarios/heavy.toml",
            "-o",
            dir.path().join("f.jpg").to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_profile_csv_with_the_link() {
    let o = autoconv(
        &[
            "advise",
            "scenarios/profiles/heavy-sim.csv",
            "--bandwidth",
            "10Gbit/s",
            "--seeds",
            "1",
            "--max-throttle",
            "80",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Recommended"), "{out}");
    let o = autoconv(&["advise", "scenarios/profiles/heavy-sim.csv"], &repo());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--bandwidth"), "{}", text(&o));
}

#[test]
fn a_run_directory_is_advised_on_its_scenario_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = autoconv(
        &[
            "sim",
            "scenarios/heavy.toml",
            "--set",
            "max-bandwidth=512MiB/s",
            "--out",
            run.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = autoconv(
        &["advise", run.to_str().unwrap(), "--seeds", "1", "--json"],
        &repo(),
    );
    let v = json(&o);
    // The run's max-bandwidth is what the settings carry.
    assert_eq!(
        v["apply"]["qmp"][1]["arguments"]["max-bandwidth"],
        512u64 << 20,
        "{}",
        text(&o)
    );
}

#[test]
fn predictive_and_dirty_limit_are_in_the_search_with_their_ready_to_apply_forms() {
    // one-hot-writer (QEMU 10.2, dirty rings, one writing vCPU of 16): by guest CPU lost the
    // best is dirty-limit, which slows only the writer.
    let v = json_ok(&[
        "advise",
        "scenarios/one-hot-writer.toml",
        "--objective",
        "guest_cpu_lost",
        "--seeds",
        "1",
        "--json",
    ]);
    // Predictive under each of the six caps, dirty-limit at four quotas.
    assert_eq!(v["coverage"]["other_mechanisms"], 10);
    let rec = &v["recommended"];
    assert_eq!(
        rec["policy"]["capabilities"],
        serde_json::json!(["dirty-limit"])
    );
    assert_eq!(
        rec["policy"]["capabilities_off"],
        serde_json::json!(["auto-converge"])
    );
    assert!(rec["policy"]["parameters"]["vcpu-dirty-limit"].is_u64());
    assert!(rec["policy"]["prerequisite"]
        .as_str()
        .unwrap()
        .contains("dirty-ring-size"));
    assert_eq!(rec["run"]["max_throttle_pct"], 0);
    let defaults = &v["qemu_defaults"]["run"];
    assert!(
        rec["run"]["guest_cpu_lost_s"].as_f64().unwrap()
            < defaults["guest_cpu_lost_s"].as_f64().unwrap() / 10.0
    );
    // QMP turns auto-converge off in the same command, as QEMU refuses both at once.
    let caps = &v["apply"]["qmp"][0]["arguments"]["capabilities"];
    assert_eq!(
        caps,
        &serde_json::json!([
            {"capability": "auto-converge", "state": false},
            {"capability": "dirty-limit", "state": true}
        ])
    );
    // The predictive policy is on the front, saying how QEMU can run it.
    let front = v["front"].as_array().unwrap();
    let steered: Vec<&serde_json::Value> = front
        .iter()
        .filter(|p| p["policy"]["steering"].is_string())
        .collect();
    assert!(!steered.is_empty(), "{front:?}");
    assert!(steered[0]["policy"]["steering"]
        .as_str()
        .unwrap()
        .contains("record --qmp SOCKET --steer predictive"));
}

#[test]
fn no_dirty_limit_where_the_scenarios_qemu_lacks_it_and_predictive_ties_the_best() {
    // qemu-7.2-reference mimics QEMU 7.2: no dirty-limit capability (8.1+).
    let v = json_ok(&[
        "advise",
        "scenarios/qemu-7.2-reference.toml",
        "--seeds",
        "1",
        "--json",
    ]);
    assert_eq!(v["coverage"]["other_mechanisms"], 6);
    let front = v["front"].as_array().unwrap();
    assert!(front
        .iter()
        .all(|p| p["policy"]["capabilities"] == serde_json::json!(["auto-converge"])));
    // The predictive policy reaches the fastest result of the whole staircase search; the
    // recommendation is the plain QEMU setting that ties it (no steering needed).
    let best = v["recommended"]["run"]["total_time_ms"].as_u64().unwrap();
    let pred = front
        .iter()
        .find(|p| p["policy"]["steering"].is_string())
        .expect("predictive on the front");
    assert_eq!(pred["run"]["total_time_ms"].as_u64().unwrap(), best);
    assert!(v["recommended"]["policy"]["steering"].is_null());
    // The text names what was searched beside the staircases.
    let o = autoconv(
        &[
            "advise",
            "scenarios/qemu-7.2-reference.toml",
            "--seeds",
            "1",
        ],
        &repo(),
    );
    let t = text(&o);
    assert!(t.contains("beside them: autoconv.policy=predictive under each max-cpu-throttle; no dirty-limit (it needs QEMU 8.1+; the scenario's autoconv.qemu_version is 7.2)"), "{t}");
}

#[test]
fn dirty_limit_is_searched_over_a_profile_region_as_the_simulator_runs_it() {
    // calibrated.toml's writes come from a profile region, which the simulator limits as
    // QEMU would (tests/sim_dirty_limit_profile.rs): the search must try it too, and find the
    // same run as `sim --set auto-converge=off --set dirty-limit=on` (vcpu-dirty-limit 1).
    let v = json_ok(&[
        "advise",
        "scenarios/calibrated.toml",
        "--seeds",
        "1",
        "--json",
    ]);
    // 6 predictive (one per max-cpu-throttle) and 4 dirty-limit quotas.
    assert_eq!(v["coverage"]["other_mechanisms"], 10);
    let dirty_limit = v["front"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["policy"]["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "dirty-limit")
        })
        .expect("dirty-limit on the front");
    let sim = json_ok(&[
        "sim",
        "scenarios/calibrated.toml",
        "--set",
        "auto-converge=off",
        "--set",
        "dirty-limit=on",
        "--no-out",
        "--json",
    ]);
    assert_eq!(
        dirty_limit["policy"]["parameters"]["vcpu-dirty-limit"], 1,
        "{dirty_limit}"
    );
    assert_eq!(
        dirty_limit["run"]["total_time_ms"], sim["total_time_ms"],
        "{dirty_limit}"
    );
    // Under --max-throttle it is left out, and the line says that reason alone.
    let o = autoconv(
        &[
            "advise",
            "scenarios/calibrated.toml",
            "--seeds",
            "1",
            "--max-throttle",
            "99",
        ],
        &repo(),
    );
    let t = text(&o);
    assert!(t.contains("no dirty-limit (--max-throttle is set, and dirty-limit has no throttle percentage to hold to)"), "{t}");
}

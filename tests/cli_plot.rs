//! `autoconv plot` and `autoconv profile --plot`: valid PNG/SVG files of the stated size, that
//! show what they claim (non-converged cells, the threshold line), and clear refusals.

mod common;
use common::{autoconv, repo, text};

use std::path::Path;

fn ok(args: &[&str]) {
    let o = autoconv(args, &repo());
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
}

/// Decode a PNG; returns (width, height, RGB pixels).
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let px = buf[..info.buffer_size()]
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

fn count(px: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    px.iter().filter(|p| **p == rgb).count()
}

fn distinct_colours(px: &[[u8; 3]]) -> usize {
    let mut v: Vec<[u8; 3]> = px.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// The colours the plots use for what they mark.
const NOT_CONVERGED_CELL: [u8; 3] = [200, 200, 200];
const THRESHOLD_RED: [u8; 3] = [213, 94, 0];
/// The switchover: reddish purple, apart from the vermillion dirty-rate line.
const SWITCHOVER_PURPLE: [u8; 3] = [204, 121, 167];
/// The remaining-memory line.
const REMAINING_ORANGE: [u8; 3] = [230, 159, 0];

#[test]
fn run_timeline_png_and_svg_have_the_stated_size() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("heavy");
    ok(&[
        "sim",
        "scenarios/heavy.toml",
        "--out",
        run.to_str().unwrap(),
    ]);
    ok(&["plot", run.to_str().unwrap()]);
    let (w, h, px) = decode_png(&run.join("timeline.png"));
    assert_eq!((w, h), (1280, 960));
    // A drawn picture, not a blank page: lines, fills, antialiased text.
    assert!(distinct_colours(&px) > 50);
    // The dirty rate in vermillion, the switchover in its own colour.
    assert!(count(&px, THRESHOLD_RED) > 100);
    assert!(count(&px, SWITCHOVER_PURPLE) > 100);
    let svg = dir.path().join("t.svg");
    ok(&[
        "plot",
        run.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
        "--size",
        "800x600",
    ]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with(r#"<svg width="800" height="600" viewBox="0 0 800 600""#),
        "{}",
        &s[..100]
    );
    assert!(s.trim_end().ends_with("</svg>"));
    assert!(s.contains("heavy: completed in"), "title");
    assert!(s.contains("migration time (s)"), "axis with unit");
    assert!(
        s.contains("cpu-throttle-initial 20"),
        "parameters in the subtitle"
    );
    assert!(s.contains("switchover"), "legend");
}

/// The plot's colour for dirty-limit's sleep per ring-full round.
const SLEEP_SKY: [u8; 3] = [86, 180, 233];

#[test]
fn run_timeline_draws_dirty_limit_sleep_in_its_own_panel() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("dl");
    ok(&[
        "sim",
        "scenarios/one-hot-writer.toml",
        "--set",
        "auto-converge=off",
        "--set",
        "dirty-limit=on",
        "--out",
        run.to_str().unwrap(),
    ]);
    // The run slept its hot vCPU (else this test would show nothing).
    let ts = std::fs::read_to_string(run.join("timeseries.csv")).unwrap();
    let header: Vec<&str> = ts.lines().next().unwrap().split(',').collect();
    let c = header
        .iter()
        .position(|h| *h == "dirty_limit_throttle_time_per_round_us")
        .unwrap();
    let max_sleep_us = ts
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(c).unwrap().parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    assert!(max_sleep_us > 100_000.0, "{max_sleep_us}");
    ok(&["plot", run.to_str().unwrap()]);
    let (w, h, px) = decode_png(&run.join("timeline.png"));
    assert_eq!((w, h), (1280, 960));
    // The sleep is a 3-pixel line held for seconds: thousands of sky-blue pixels, all in the
    // bottom quarter (the fourth panel), none in the three panels above it.
    let sky_rows: Vec<usize> = px
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == SLEEP_SKY)
        .map(|(i, _)| i / w as usize)
        .collect();
    assert!(sky_rows.len() > 1_000, "{} sky-blue pixels", sky_rows.len());
    let first = *sky_rows.iter().min().unwrap();
    assert!(first > h as usize * 3 / 4 - 20, "sky blue from row {first}");
    let svg = dir.path().join("dl.svg");
    ok(&["plot", run.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("dirty-limit (ms per round)"), "axis with unit");
    assert!(s.contains("dirty-limit-throttle-time-per-round"), "legend");
    assert!(s.contains("dirty-limit-ring-full-time"), "legend");
    assert!(
        s.contains("dirty-limit on, vcpu-dirty-limit 1 MB/s, x-vcpu-dirty-limit-period 1000 ms"),
        "dirty-limit's parameters in the subtitle"
    );
    // An auto-converge run of the same scenario has no dirty-limit panel.
    let ac = dir.path().join("ac");
    ok(&[
        "sim",
        "scenarios/one-hot-writer.toml",
        "--out",
        ac.to_str().unwrap(),
    ]);
    ok(&["plot", ac.to_str().unwrap()]);
    let (_, _, px) = decode_png(&ac.join("timeline.png"));
    assert_eq!(count(&px, SLEEP_SKY), 0);
    let svg = dir.path().join("ac.svg");
    ok(&["plot", ac.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(!s.contains("dirty-limit (ms per round)"));
}

#[test]
fn heatmap_marks_points_that_did_not_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("mixed");
    ok(&[
        "sweep",
        "scenarios/heavy.toml",
        "--grid",
        "cpu-throttle-initial=20:40:20",
        "--grid",
        "max-cpu-throttle=40:90:25",
        "--set",
        "autoconv.time_limit_s=120",
        "--out",
        mixed.to_str().unwrap(),
    ]);
    ok(&["plot", mixed.to_str().unwrap(), "--size", "900x700"]);
    let (w, h, px) = decode_png(&mixed.join("total_time.png"));
    assert_eq!((w, h), (900, 700));
    // max-cpu-throttle 40 cannot converge heavy: its cells (plus the key) are light grey.
    let dark = count(&px, NOT_CONVERGED_CELL);
    assert!(dark > 20_000, "{dark} dark pixels");
    // The same sweep where everything converges has only the key's swatch in that grey.
    let all = dir.path().join("all");
    ok(&[
        "sweep",
        "scenarios/heavy.toml",
        "--grid",
        "cpu-throttle-initial=20:40:20",
        "--grid",
        "max-cpu-throttle=80:90:10",
        "--out",
        all.to_str().unwrap(),
    ]);
    ok(&["plot", all.to_str().unwrap(), "--size", "900x700"]);
    let (_, _, px) = decode_png(&all.join("total_time.png"));
    let key_only = count(&px, NOT_CONVERGED_CELL);
    assert!(key_only < 2_000, "{key_only}");
    // One axis: a line plot, in SVG, naming the non-converged points in its legend.
    let line = dir.path().join("line");
    ok(&[
        "sweep",
        "scenarios/heavy.toml",
        "--grid",
        "max-cpu-throttle=40:90:10",
        "--seeds",
        "2",
        "--set",
        "autoconv.time_limit_s=120",
        "--out",
        line.to_str().unwrap(),
    ]);
    let svg = line.join("x.svg");
    ok(&[
        "plot",
        line.join("runs.csv").to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("did not converge (no time)"), "legend");
    assert!(s.contains("total time (s)"), "axis with unit");
    assert!(s.contains("min .. max over seeds"));
}

#[test]
fn profile_plot_shows_the_threshold_for_the_bandwidth() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("heavy-profile.csv");
    let png = dir.path().join("heavy-profile.png");
    let o = autoconv(
        &[
            "profile",
            "scenarios/heavy.toml",
            "--hold",
            "2s",
            "-o",
            csv.to_str().unwrap(),
            "--plot",
            png.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("first measured level under the line: 80% throttle"),
        "{out}"
    );
    let header = std::fs::read_to_string(&csv).unwrap();
    assert!(header.starts_with("throttle_pct,dirty_pages_s,interval_ms,"));
    let (w, h, px) = decode_png(&png);
    assert_eq!((w, h), (1280, 960));
    // The 3-pixel threshold line across the plot.
    assert!(count(&px, THRESHOLD_RED) > 2_000);
    // The same profile judged at a bandwidth it never gets under says so.
    let svg = dir.path().join("p.svg");
    ok(&[
        "plot",
        csv.to_str().unwrap(),
        "--bandwidth",
        "16MiB/s",
        "-o",
        svg.to_str().unwrap(),
    ]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.contains("never under the line"),
        "verdict in the subtitle"
    );
    assert!(s.contains("migration bandwidth 16 MiB/s"));
}

#[test]
fn a_sawtooth_is_never_drawn_below_its_axis() {
    // dma's remaining memory drops to ~0 and jumps back at every sync: thick polylines
    // mitred those reversals into spikes through the time axis's labels.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("dma");
    let o = autoconv(
        &["sim", "scenarios/dma.toml", "--out", run.to_str().unwrap()],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(1), "not converged: {}", text(&o));
    ok(&["plot", run.to_str().unwrap()]);
    let (w, h, px) = decode_png(&run.join("timeline.png"));
    // The bottom panel's axis is 56 px above the bottom (44 label area + 12 margin); its
    // labels are black text.
    let below: Vec<[u8; 3]> = px[(w * (h - 50)) as usize..].to_vec();
    assert_eq!(
        count(&below, REMAINING_ORANGE),
        0,
        "line drawn below the axis"
    );
    assert!(count(&px, REMAINING_ORANGE) > 1_000, "the line is drawn");
}

#[test]
fn sweep_axes_carry_units_and_the_best_cell_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid");
    ok(&[
        "sweep",
        "scenarios/heavy.toml",
        "--grid",
        "cpu-throttle-initial=70:90:10",
        "--grid",
        "cpu-throttle-increment=10:30:10",
        "--out",
        grid.to_str().unwrap(),
    ]);
    let svg = dir.path().join("h.svg");
    ok(&["plot", grid.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("cpu-throttle-initial (%)"), "x axis unit");
    assert!(s.contains("cpu-throttle-increment (%)"), "y axis unit");
    assert!(s.contains("best (all"), "key of the best-cell frame");
    // A bandwidth axis given in QMP's raw bytes/s is drawn to scale in MiB/s.
    let bw = dir.path().join("bw");
    ok(&[
        "sweep",
        "scenarios/heavy.toml",
        "--grid",
        "max-bandwidth=536870912,1073741824,2147483648",
        "--out",
        bw.to_str().unwrap(),
    ]);
    let svg = dir.path().join("bw.svg");
    ok(&["plot", bw.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("max-bandwidth (MiB/s)"), "x axis unit");
    assert!(!s.contains("536870912"), "raw bytes on the axis");
    assert!(s.lines().any(|l| l.trim() == "2000"), "MiB/s ticks");
}

#[test]
fn a_profile_csv_replots_with_the_verdict_profile_printed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    // heavy migrates at 1 GiB/s, not QEMU's 128 MiB/s default.
    let o = autoconv(
        &[
            "profile",
            "scenarios/heavy.toml",
            "--hold",
            "2s",
            "-o",
            csv.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("at 1 GiB/s"),
        "{}",
        text(&o)
    );
    let svg = dir.path().join("p.svg");
    ok(&["plot", csv.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.contains("migration bandwidth 1 GiB/s"),
        "judged at the CSV's bandwidth"
    );
    // --bandwidth still overrides it.
    ok(&[
        "plot",
        csv.to_str().unwrap(),
        "--bandwidth",
        "16MiB/s",
        "-o",
        svg.to_str().unwrap(),
    ]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("migration bandwidth 16 MiB/s"));
}

#[test]
fn plot_refuses_what_it_cannot_draw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("other.csv"), "a,b\n1,2\n").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    for (args, message) in [
        (vec!["plot", "nope"], "cannot read nope"),
        (vec!["plot", "other.csv"], "not a runs.csv"),
        (vec!["plot", "empty"], "neither a run directory"),
        (
            vec!["plot", "other.csv", "--size", "12"],
            "expected WIDTHxHEIGHT",
        ),
    ] {
        let o = autoconv(&args, d);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(message), "{args:?}: {}", text(&o));
    }
    let run = d.join("run");
    ok(&[
        "sim",
        "scenarios/light.toml",
        "--out",
        run.to_str().unwrap(),
    ]);
    let o = autoconv(&["plot", "run", "-o", "x.jpg"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("x.jpg: the output must end in .png or .svg"));
    assert!(!d.join("x.jpg").exists());
    // Three axes need --where for the one not drawn.
    let sw = d.join("sw");
    ok(&[
        "sweep",
        "scenarios/light.toml",
        "--grid",
        "cpu-throttle-initial=10,20",
        "--grid",
        "cpu-throttle-increment=10,20",
        "--grid",
        "downtime-limit=100,300",
        "--out",
        sw.to_str().unwrap(),
    ]);
    let o = autoconv(&["plot", "sw"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("fix `downtime-limit` with --where downtime-limit=VALUE"),
        "{}",
        text(&o)
    );
    let o = autoconv(&["plot", "sw", "--where", "downtime-limit=300"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(d.join("sw/total_time.png").exists());
}

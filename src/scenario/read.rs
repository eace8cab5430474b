//! A parsed scenario document turned into a checked [`Scenario`]: every table's keys read with
//! their ranges, and the rules across regions, each error pointing at the line or `--set` that
//! broke it.

use super::calibrate::ProfileAccess;
use super::doc::{Context, Fields, Kind, Origin, ScenarioError, Table, Value};
use super::profile_region;
use super::values::{f64_field, size_field, str_field, u64_field, want_table};
use super::{
    GuestSpec, HostSpec, LinkSpec, ModelKind, Pattern, PhaseSpec, RegionSpec, Scenario,
    DEFAULT_DIRTY_RING_SIZE, PAGE_EXACT_MAX_BYTES, PAGE_SIZE_BYTES, QEMU_PAGE_HEADER_BYTES,
};
use crate::migration::params::check_config;
use crate::migration::vocabulary;
use crate::migration::{
    AutoconvSettings, MigrationConfig, MigrationParameters, ParamValue, ParameterError, Policy,
    QemuVersion,
};
use crate::units::{format_bytes, parse_rate_bytes_s};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "guest",
    "region",
    "host",
    "link",
    "migration",
    "autoconv",
];
const GUEST_KEYS: &[&str] = &[
    "memory",
    "vcpus",
    "page_size",
    "model",
    "device_state",
    "warmup_s",
];
const REGION_KEYS: &[&str] = &[
    "name",
    "offset",
    "size",
    "pattern",
    "write_rate_pages_s",
    "vcpus",
    "cpu_bound_pct",
    "filled_pct",
    "hot_size",
    "hot_writes_pct",
    "phases",
    "profile",
    "profile_access",
];
const HOST_KEYS: &[&str] = &[
    "dirty_fault_us",
    "dirty_sync_us_per_gib",
    "timer_slack_us",
    "dirty_ring_size",
];
const LINK_KEYS: &[&str] = &["bandwidth", "page_header_bytes"];
const AUTOCONV_KEYS: &[&str] = &["time_limit_s", "qemu_version", "policy", "profile"];
const PHASE_KEYS: &[&str] = &["start_s", "rate_pct"];

pub(super) fn read_scenario(
    ctx: &Context,
    stem: &str,
    doc: &Table,
) -> Result<Scenario, ScenarioError> {
    let top = Fields::new(ctx, "", doc).only(TOP_KEYS)?;
    let name = str_field(&top, "name")?.unwrap_or(stem).to_string();
    // The name becomes a directory under results/: a path in it would write elsewhere.
    if let Some(v) = top.get("name") {
        if !crate::report::is_plain_name(&name) {
            return Err(top.invalid(
                v,
                "name",
                format!("{name:?} is not a plain name: no '/', '\\', '..', not empty (it names the output directory)"),
            ));
        }
    }
    let description = str_field(&top, "description")?.unwrap_or("").to_string();
    let seed = u64_field(&top, "seed")?.unwrap_or(1);

    let empty = Table::default();
    let guest_v = top.get("guest");
    let guest_t = match guest_v {
        Some(v) => want_table(&top, "guest", v)?,
        None => {
            return Err(ctx.invalid(
                Origin::Default,
                "guest",
                "missing: a scenario needs [guest] with at least `memory`",
            ))
        }
    };
    let guest = read_guest(ctx, guest_t, guest_v.map_or(Origin::Default, |v| v.origin))?;

    let host_t = match top.get("host") {
        Some(v) => want_table(&top, "host", v)?,
        None => &empty,
    };
    let host = read_host(ctx, host_t)?;
    let link_t = match top.get("link") {
        Some(v) => want_table(&top, "link", v)?,
        None => &empty,
    };
    let link = read_link(ctx, link_t)?;

    // `[autoconv]` first: its qemu_version decides which capabilities `[migration]` may name.
    let mut migration = MigrationConfig::default();
    if let Some(v) = top.get("autoconv") {
        let t = want_table(&top, "autoconv", v)?;
        migration.autoconv = read_autoconv(ctx, t)?;
    }
    if let Some(v) = top.get("migration") {
        let t = want_table(&top, "migration", v)?;
        let version = migration.autoconv.qemu_version;
        read_migration(ctx, t, &mut migration.params, version)?;
    }
    check_migration_config(ctx, doc, &migration)?;

    let mut regions = Vec::new();
    if let Some(v) = top.get("region") {
        let Kind::Array(items) = &v.kind else {
            return Err(top.invalid(v, "region", "expected [[region]] tables"));
        };
        let mut next_offset = 0;
        for (i, item) in items.iter().enumerate() {
            let Kind::Table(t) = &item.kind else {
                return Err(top.invalid(item, "region", "expected [[region]] tables"));
            };
            let r = read_region(ctx, i, t, item.origin, &mut next_offset)?;
            regions.push(r);
        }
    }

    let scenario = Scenario {
        name,
        description,
        seed,
        guest,
        regions,
        host,
        link,
        migration,
    };
    check_scenario(ctx, doc, &scenario)?;
    let mut scenario = scenario;
    scenario.regions.sort_by_key(|r| r.offset_bytes);
    Ok(scenario)
}

fn read_guest(ctx: &Context, t: &Table, origin: Origin) -> Result<GuestSpec, ScenarioError> {
    let f = Fields::new(ctx, "guest", t).only(GUEST_KEYS)?;
    let memory_bytes = size_field(&f, "memory")?
        .ok_or_else(|| ctx.invalid(origin, "guest.memory", "missing: the guest's RAM size"))?;
    let vcpus = u64_field(&f, "vcpus")?.unwrap_or(1);
    let page = size_field(&f, "page_size")?.unwrap_or(PAGE_SIZE_BYTES);
    let model = match str_field(&f, "model")? {
        None | Some("aggregate") => ModelKind::Aggregate,
        Some("page-exact") => ModelKind::PageExact,
        Some(other) => {
            let v = t.get("model").expect("read above");
            return Err(f.invalid(
                v,
                "model",
                format!("expected \"aggregate\" or \"page-exact\", found {other:?}"),
            ));
        }
    };
    let device_state_bytes = size_field(&f, "device_state")?.unwrap_or(64 << 10);
    let warmup_s = f64_field(&f, "warmup_s", 0.0, 1e6)?.unwrap_or(0.0);
    let at = |key: &str| t.get(key).map_or(origin, |v| v.origin);
    if page != PAGE_SIZE_BYTES {
        return Err(ctx.invalid(
            at("page_size"),
            "guest.page_size",
            "only 4096-byte pages (x86's TARGET_PAGE_SIZE) are modelled",
        ));
    }
    if memory_bytes == 0 || memory_bytes % PAGE_SIZE_BYTES != 0 {
        return Err(ctx.invalid(
            at("memory"),
            "guest.memory",
            format!("must be a positive multiple of 4 KiB, found {memory_bytes} bytes"),
        ));
    }
    if !(1..=4096).contains(&vcpus) {
        return Err(ctx.invalid(
            at("vcpus"),
            "guest.vcpus",
            format!("expected 1 to 4096 vCPUs, found {vcpus}"),
        ));
    }
    if model == ModelKind::PageExact && memory_bytes > PAGE_EXACT_MAX_BYTES {
        return Err(ctx.invalid(
            at("model"),
            "guest.model",
            format!(
                "the page-exact model serves guests up to {}; this one has {} (use \"aggregate\")",
                format_bytes(PAGE_EXACT_MAX_BYTES),
                format_bytes(memory_bytes)
            ),
        ));
    }
    Ok(GuestSpec {
        memory_bytes,
        vcpus: vcpus as u32,
        model,
        device_state_bytes,
        warmup_s,
    })
}

fn read_host(ctx: &Context, t: &Table) -> Result<HostSpec, ScenarioError> {
    let f = Fields::new(ctx, "host", t).only(HOST_KEYS)?;
    let big = 1e9;
    let host = HostSpec {
        dirty_fault_us: f64_field(&f, "dirty_fault_us", 0.0, big)?.unwrap_or(3.0),
        dirty_sync_us_per_gib: f64_field(&f, "dirty_sync_us_per_gib", 0.0, big)?.unwrap_or(2000.0),
        timer_slack_us: f64_field(&f, "timer_slack_us", 0.0, 1e6)?.unwrap_or(0.0),
        dirty_ring_size: u64_field(&f, "dirty_ring_size")?.unwrap_or(DEFAULT_DIRTY_RING_SIZE),
    };
    let ring = host.dirty_ring_size;
    if ring != 0 && !(ring.is_power_of_two() && (1024..=65536).contains(&ring)) {
        let v = t
            .get("dirty_ring_size")
            .expect("a non-default value was read");
        return Err(f.invalid(
            v,
            "dirty_ring_size",
            format!("expected 0 (no dirty ring) or a power of two from 1024 to 65536 entries, found {ring}"),
        ));
    }
    Ok(host)
}

fn read_link(ctx: &Context, t: &Table) -> Result<LinkSpec, ScenarioError> {
    let f = Fields::new(ctx, "link", t).only(LINK_KEYS)?;
    let bandwidth_bytes_s = match f.get("bandwidth") {
        None => 1_250_000_000, // 10 Gbit/s
        Some(v) => {
            let bytes = match &v.kind {
                Kind::Int(n) if *n > 0 => Ok(*n as u64),
                Kind::Str(s) => parse_rate_bytes_s(s).map_err(|e| e.to_string()),
                _ => Err("expected bytes/s or a rate such as \"10Gbit/s\"".to_string()),
            }
            .map_err(|m| f.invalid(v, "bandwidth", m))?;
            if bytes == 0 {
                return Err(f.invalid(v, "bandwidth", "must be above 0"));
            }
            bytes
        }
    };
    let page_header_bytes = u64_field(&f, "page_header_bytes")?.unwrap_or(QEMU_PAGE_HEADER_BYTES);
    if page_header_bytes > PAGE_SIZE_BYTES {
        let v = f
            .get("page_header_bytes")
            .expect("a non-default value was read");
        return Err(f.invalid(
            v,
            "page_header_bytes",
            format!("expected 0 to {PAGE_SIZE_BYTES} bytes, found {page_header_bytes}"),
        ));
    }
    Ok(LinkSpec {
        bandwidth_bytes_s,
        page_header_bytes,
    })
}

fn param_value(v: &Value) -> ParamValue {
    match &v.kind {
        Kind::Int(n) => ParamValue::Int(*n),
        Kind::Float(x) => ParamValue::Float(*x),
        Kind::Bool(b) => ParamValue::Bool(*b),
        Kind::Str(s) => ParamValue::Str(s.clone()),
        _ => ParamValue::Str(String::new()),
    }
}

/// Reads `[migration]` for a scenario posing as QEMU `version`: a capability that release's
/// enum lacks (added later, or dropped) is refused in QEMU's words for an unknown enum value.
pub(super) fn read_migration(
    ctx: &Context,
    t: &Table,
    params: &mut MigrationParameters,
    version: QemuVersion,
) -> Result<(), ScenarioError> {
    for (key, v) in &t.entries {
        let path = format!("migration.{key}");
        if matches!(v.kind, Kind::Array(_) | Kind::Table(_)) {
            return Err(ctx.invalid(v.origin, &path, "expected a value"));
        }
        if let Some(message) = not_in_release(key, version) {
            return Err(ctx.invalid(v.origin, &path, message));
        }
        params
            .set(key, &param_value(v))
            .map_err(|e| ctx.invalid(v.origin, &path, e.to_string()))?;
    }
    params.validate().map_err(|e| {
        if let ParameterError::Refused { .. } = e {
            // The capabilities conflict: point at the dirty-limit line.
            let origin = t
                .entries
                .iter()
                .find(|(k, _)| k.as_str() == "dirty-limit")
                .map_or(Origin::Default, |(_, v)| v.origin);
            return ctx.invalid(origin, "migration.dirty-limit", e.to_string());
        }
        let origin = t
            .entries
            .iter()
            .find(|(k, _)| MigrationParameters::canonical_name(k) == Some("max-cpu-throttle"))
            .or_else(|| {
                t.entries.iter().find(|(k, _)| {
                    MigrationParameters::canonical_name(k) == Some("cpu-throttle-initial")
                })
            })
            .map_or(Origin::Default, |(_, v)| v.origin);
        ctx.invalid(origin, "migration.max-cpu-throttle", e.to_string())
    })
}

/// QEMU's refusal of a capability QEMU `version` does not have, with when QEMU added or
/// dropped it. `dirty-limit` (modelled) is left to [`check_config`], which says more.
fn not_in_release(name: &str, version: QemuVersion) -> Option<String> {
    let c = vocabulary::capability(name)?;
    if c.in_release(version) || vocabulary::MODELLED_CAPABILITIES.contains(&c.name) {
        return None;
    }
    let when = match c.removed {
        Some(gone) if version >= gone => format!("QEMU {gone} removed it"),
        _ => format!("QEMU {} added it", c.added),
    };
    Some(format!(
        "Parameter 'capability' does not accept value '{name}' (autoconv.qemu_version is {version}; {when})"
    ))
}

pub(super) fn read_autoconv(ctx: &Context, t: &Table) -> Result<AutoconvSettings, ScenarioError> {
    let f = Fields::new(ctx, "autoconv", t).only(AUTOCONV_KEYS)?;
    let mut s = AutoconvSettings::default();
    if let Some(limit) = f64_field(&f, "time_limit_s", 0.001, 1e7)? {
        s.time_limit_ms = (limit * 1000.0).round() as u64;
    }
    if let Some(text) = str_field(&f, "qemu_version")? {
        s.qemu_version = QemuVersion::parse(text).ok_or_else(|| {
            let v = t.get("qemu_version").expect("read above");
            f.invalid(
                v,
                "qemu_version",
                format!(
                    "expected a QEMU release from {} to {} such as \"7.2\" or \"10.2\", found {text:?}",
                    QemuVersion::OLDEST,
                    QemuVersion::CURRENT
                ),
            )
        })?;
    }
    if let Some(text) = str_field(&f, "policy")? {
        s.policy = Policy::parse(text).ok_or_else(|| {
            let v = t.get("policy").expect("read above");
            f.invalid(
                v,
                "policy",
                format!("expected \"qemu\" (QEMU's staircase) or \"predictive\" (autoconv's own), found {text:?}"),
            )
        })?;
    }
    if let Some(v) = f.get("profile") {
        s.profile = Some(super::profile_region::read_policy_profile(ctx, &f, v)?);
    }
    Ok(s)
}

/// Rules between `[migration]` and `[autoconv]`, pointed at the line that makes them fail.
pub(super) fn check_migration_config(
    ctx: &Context,
    doc: &Table,
    config: &MigrationConfig,
) -> Result<(), ScenarioError> {
    check_config(&config.params, &config.autoconv).map_err(|message| {
        let find = |table: &str, key: &str| match doc.get(table) {
            Some(Value {
                kind: Kind::Table(t),
                ..
            }) => t.get(key).map(|v| v.origin),
            _ => None,
        };
        let (origin, path) = if let Some(o) = find("migration", "dirty-limit") {
            (o, "migration.dirty-limit")
        } else if let Some(o) = find("autoconv", "policy") {
            (o, "autoconv.policy")
        } else if let Some(o) = find("autoconv", "profile") {
            (o, "autoconv.profile")
        } else {
            (Origin::Default, "migration.dirty-limit")
        };
        ctx.invalid(origin, path, message)
    })
}

fn read_region(
    ctx: &Context,
    index: usize,
    t: &Table,
    origin: Origin,
    next_offset: &mut u64,
) -> Result<RegionSpec, ScenarioError> {
    let prefix = format!("region[{index}]");
    let f = Fields::new(ctx, &prefix, t).only(REGION_KEYS)?;
    let name = str_field(&f, "name")?
        .map(str::to_string)
        .unwrap_or_else(|| format!("region{index}"));
    let at = |key: &str| t.get(key).map_or(origin, |v| v.origin);
    let size_bytes = size_field(&f, "size")?.ok_or_else(|| {
        ctx.invalid(
            origin,
            &format!("{prefix}.size"),
            "missing: the region's size",
        )
    })?;
    let offset_bytes = size_field(&f, "offset")?.unwrap_or(*next_offset);
    *next_offset = offset_bytes.saturating_add(size_bytes);
    for (key, value) in [("size", size_bytes), ("offset", offset_bytes)] {
        if value % PAGE_SIZE_BYTES != 0 || (key == "size" && value == 0) {
            return Err(ctx.invalid(
                at(key),
                &format!("{prefix}.{key}"),
                format!(
                    "must be a {}multiple of 4 KiB, found {value} bytes",
                    if key == "size" { "positive " } else { "" }
                ),
            ));
        }
    }
    let pattern_name = str_field(&f, "pattern")?.unwrap_or("static");
    let rate = f64_field(&f, "write_rate_pages_s", 0.0, 1e15)?;
    let vcpus = u64_field(&f, "vcpus")?;
    let cpu_bound_pct = f64_field(&f, "cpu_bound_pct", 0.0, 100.0)?.unwrap_or(100.0);
    let filled_pct = f64_field(&f, "filled_pct", 0.0, 100.0)?.unwrap_or(100.0);
    let hot_size = size_field(&f, "hot_size")?;
    let hot_writes_pct = f64_field(&f, "hot_writes_pct", 0.0, 100.0)?;
    let pattern = match pattern_name {
        "sequential" => Pattern::Sequential,
        "random" => Pattern::Random,
        "static" => Pattern::Static,
        "profile" => profile_region::read_profile_region(ctx, &f, &prefix, origin, size_bytes)?,
        "hotcold" => {
            let hot_bytes = hot_size.ok_or_else(|| {
                ctx.invalid(
                    origin,
                    &format!("{prefix}.hot_size"),
                    "missing: hotcold needs hot_size",
                )
            })?;
            if hot_bytes == 0 || hot_bytes >= size_bytes || hot_bytes % PAGE_SIZE_BYTES != 0 {
                return Err(ctx.invalid(
                    at("hot_size"),
                    &format!("{prefix}.hot_size"),
                    format!(
                        "must be a multiple of 4 KiB above 0 and below the region's size ({}), found {hot_bytes} bytes",
                        format_bytes(size_bytes)
                    ),
                ));
            }
            Pattern::Hotcold {
                hot_bytes,
                hot_writes_pct: hot_writes_pct.unwrap_or(90.0),
            }
        }
        other => {
            return Err(ctx.invalid(
                at("pattern"),
                &format!("{prefix}.pattern"),
                format!(
                "expected \"sequential\", \"random\", \"hotcold\", \"profile\" or \"static\", found {other:?}"
            ),
            ))
        }
    };
    let hot_keys_allowed = matches!(
        pattern,
        Pattern::Hotcold { .. }
            | Pattern::Profile {
                access: ProfileAccess::Hotcold { .. },
                ..
            }
    );
    if !hot_keys_allowed {
        for key in ["hot_size", "hot_writes_pct"] {
            if let Some(v) = t.get(key) {
                return Err(ctx.invalid(
                    v.origin,
                    &format!("{prefix}.{key}"),
                    format!("only a hotcold region (or a profile region with profile_access = \"hotcold\") has {key}"),
                ));
            }
        }
    }
    if !matches!(pattern, Pattern::Profile { .. }) {
        for key in ["profile", "profile_access"] {
            if let Some(v) = t.get(key) {
                return Err(ctx.invalid(
                    v.origin,
                    &format!("{prefix}.{key}"),
                    format!("only a region with pattern = \"profile\" has {key}"),
                ));
            }
        }
    }
    let write_rate_pages_s = match (&pattern, rate) {
        (Pattern::Profile { .. }, _) => {
            // Its rates come from the profile; a hand-set rate or CPU share would be ignored.
            for key in ["write_rate_pages_s", "cpu_bound_pct"] {
                if let Some(v) = t.get(key) {
                    return Err(ctx.invalid(
                        v.origin,
                        &format!("{prefix}.{key}"),
                        "a profile region takes its rates from the profile; remove this key",
                    ));
                }
            }
            0.0
        }
        (Pattern::Static, Some(r)) if r > 0.0 => {
            return Err(ctx.invalid(
                at("write_rate_pages_s"),
                &format!("{prefix}.write_rate_pages_s"),
                "a static region is not written; give it a pattern to write it",
            ))
        }
        (Pattern::Static, _) => 0.0,
        (_, Some(r)) => r,
        (_, None) => {
            return Err(ctx.invalid(
                origin,
                &format!("{prefix}.write_rate_pages_s"),
                "missing: how many page writes per second the region gets",
            ))
        }
    };
    let vcpus = vcpus.unwrap_or(u64::from(
        !matches!(pattern, Pattern::Static | Pattern::Profile { .. }) && cpu_bound_pct > 0.0,
    ));
    if cpu_bound_pct > 0.0 && write_rate_pages_s > 0.0 && vcpus == 0 {
        return Err(ctx.invalid(
            at("vcpus"),
            &format!("{prefix}.vcpus"),
            "CPU-bound writes need at least one vCPU (or set cpu_bound_pct = 0 for DMA)",
        ));
    }
    let mut phases = Vec::new();
    if let Some(v) = f.get("phases") {
        let Kind::Array(items) = &v.kind else {
            return Err(f.invalid(v, "phases", "expected an array of { start_s, rate_pct }"));
        };
        let mut last = -1.0;
        for (k, item) in items.iter().enumerate() {
            let Kind::Table(pt) = &item.kind else {
                return Err(f.invalid(
                    item,
                    "phases",
                    "expected { start_s = ..., rate_pct = ... }",
                ));
            };
            let pf = Fields::new(ctx, &format!("{prefix}.phases[{k}]"), pt).only(PHASE_KEYS)?;
            let start_s = f64_field(&pf, "start_s", 0.0, 1e9)?.ok_or_else(|| {
                ctx.invalid(
                    item.origin,
                    &format!("{prefix}.phases[{k}].start_s"),
                    "missing",
                )
            })?;
            let rate_pct = f64_field(&pf, "rate_pct", 0.0, 1e6)?.ok_or_else(|| {
                ctx.invalid(
                    item.origin,
                    &format!("{prefix}.phases[{k}].rate_pct"),
                    "missing",
                )
            })?;
            if start_s <= last {
                return Err(ctx.invalid(
                    item.origin,
                    &format!("{prefix}.phases[{k}].start_s"),
                    "phases must be in increasing start_s order",
                ));
            }
            last = start_s;
            phases.push(PhaseSpec { start_s, rate_pct });
        }
    }
    Ok(RegionSpec {
        name,
        offset_bytes,
        size_bytes,
        pattern,
        write_rate_pages_s,
        vcpus: vcpus as u32,
        cpu_bound_pct,
        filled_pct,
        phases,
    })
}

/// Rules across the whole scenario; errors point at the region that breaks them.
fn check_scenario(ctx: &Context, doc: &Table, s: &Scenario) -> Result<(), ScenarioError> {
    let region_origin = |i: usize, key: &str| -> Origin {
        let Some(Value {
            kind: Kind::Array(items),
            ..
        }) = doc.get("region")
        else {
            return Origin::Default;
        };
        match items.get(i).map(|v| (&v.kind, v.origin)) {
            Some((Kind::Table(t), origin)) => t.get(key).map_or(origin, |v| v.origin),
            _ => Origin::Default,
        }
    };
    let mem = s.guest.memory_bytes;
    for (i, r) in s.regions.iter().enumerate() {
        if r.offset_bytes.saturating_add(r.size_bytes) > mem {
            return Err(ctx.invalid(
                region_origin(i, "size"),
                &format!("region[{i}].size"),
                format!(
                    "region `{}` (offset {}, size {}) does not fit in the guest's memory of {}",
                    r.name,
                    format_bytes(r.offset_bytes),
                    format_bytes(r.size_bytes),
                    format_bytes(mem)
                ),
            ));
        }
        for (j, other) in s.regions.iter().enumerate().take(i) {
            let overlap = r.offset_bytes < other.offset_bytes + other.size_bytes
                && other.offset_bytes < r.offset_bytes + r.size_bytes;
            if overlap {
                return Err(ctx.invalid(
                    region_origin(i, "offset"),
                    &format!("region[{i}].offset"),
                    format!("region `{}` overlaps region `{}`", r.name, other.name),
                ));
            }
            if r.name == other.name {
                return Err(ctx.invalid(
                    region_origin(i, "name"),
                    &format!("region[{i}].name"),
                    format!("region name `{}` is used twice (also region[{j}])", r.name),
                ));
            }
        }
        if let Pattern::Sequential = r.pattern {
            if u64::from(r.vcpus.max(1)) > r.size_bytes / PAGE_SIZE_BYTES {
                return Err(ctx.invalid(
                    region_origin(i, "vcpus"),
                    &format!("region[{i}].vcpus"),
                    "more vCPUs than pages to sweep",
                ));
            }
        }
    }
    let used: u64 = s.regions.iter().map(|r| u64::from(r.vcpus)).sum();
    if used > u64::from(s.guest.vcpus) {
        return Err(ctx.invalid(
            Origin::Default,
            "region.vcpus",
            format!(
                "the regions' workloads need {used} vCPUs but the guest has {} (guest.vcpus)",
                s.guest.vcpus
            ),
        ));
    }
    Ok(())
}

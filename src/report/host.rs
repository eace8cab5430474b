//! The host a measurement was made on: a calibration holds only on a host like it (one hot/cold
//! image ran 40K page writes/s on the unrecorded host of the first shipped profiles, and from
//! 7.5K to 35K on an AMD EPYC host as its share of a core went), so profiles record it and
//! commands using them compare.

/// CPU model and logical CPUs of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// `model name` from /proc/cpuinfo (its first processor; `unknown` if absent).
    pub cpu_model: String,
    /// Logical CPUs (`processor` entries; 0 = unknown).
    pub cores: u32,
}

impl HostInfo {
    /// This machine.
    pub fn this_host() -> HostInfo {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mut h = Self::from_cpuinfo(&text);
        if h.cores == 0 {
            h.cores = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
        }
        h
    }

    /// From the text of /proc/cpuinfo.
    pub fn from_cpuinfo(text: &str) -> HostInfo {
        let field = |line: &str, key: &str| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        };
        let cpu_model = text
            .lines()
            .find_map(|l| field(l, "model name"))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let cores = text
            .lines()
            .filter(|l| field(l, "processor").is_some())
            .count();
        HostInfo {
            cpu_model,
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
        }
    }

    /// Whether a guest would run as fast here as on `other`, as far as can be told: the same
    /// CPU model and, when both are known, as many logical CPUs.
    pub fn same_as(&self, other: &HostInfo) -> bool {
        self.cpu_model == other.cpu_model
            && (self.cores == 0 || other.cores == 0 || self.cores == other.cores)
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cores > 0 {
            write!(f, "{}, {} logical CPUs", self.cpu_model, self.cores)
        } else {
            write!(f, "{}", self.cpu_model)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_gives_model_and_processor_count() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n";
        let h = HostInfo::from_cpuinfo(text);
        assert_eq!(
            h,
            HostInfo {
                cpu_model: "AMD EPYC".into(),
                cores: 2
            }
        );
        assert_eq!(h.to_string(), "AMD EPYC, 2 logical CPUs");
        // Some architectures have no `model name`.
        assert_eq!(
            HostInfo::from_cpuinfo("processor : 0\n").cpu_model,
            "unknown"
        );
    }

    #[test]
    fn hosts_differ_by_model_or_known_core_count() {
        let a = HostInfo::from_cpuinfo("processor: 0\nmodel name: X\nprocessor: 1\n");
        let mut b = a.clone();
        assert!(a.same_as(&b));
        b.cores = 8;
        assert!(!a.same_as(&b));
        b.cores = 0;
        assert!(a.same_as(&b));
        b.cpu_model = "Y".into();
        assert!(!a.same_as(&b));
    }
}

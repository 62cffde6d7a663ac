//! How many cores this process may use.

/// The cores this process may use, asked once: the standard library reads
/// the cgroup's CPU quota from /proc and /sys at each call (a dozen system
/// calls), and the key conversion and the per-host rules ask on every run.
pub fn available() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

//! Memory a worker thread freed, handed back to the system when the
//! thread is done.
//!
//! The read of hosts.nix frees its syntax tree (a quarter of the peak at
//! 10,000 hosts) on the thread that built it. mimalloc keeps a thread's
//! freed pages for that thread and returns them to the system only after a
//! delay; the threads that build the outputs allocate afresh in the
//! meantime, so without this the freed tree still counts in the peak
//! (`pve check` at 10,000 hosts: 95-104 MiB without, 75 with). The key
//! conversion's and `pve check`'s render threads do the same. The threads
//! that render the output files do not: forcing a purge there cost `pve
//! render` 25 % of its wall time at 10,000 hosts for 10 MiB (benches/).

/// Returns the calling thread's free memory to the system now.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes a plain bool and only walks mimalloc's own
    // per-thread structures; it is safe to call on any thread at any time,
    // also when mimalloc is not the global allocator (it then has nothing
    // to collect).
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// mimalloc's `purge_delay` option (its `mi_option_t` number: libmimalloc-sys
/// names only some of the options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has the allocator hand pages back to the system as soon as they are
/// wholly free, instead of a second later (mimalloc's default, longer than
/// a whole `pve check` at 10,000 hosts: nothing freed during the read was
/// returned). The read frees its syntax and scratch on one thread while the
/// other still allocates; kept, they were a sixth of the peak
/// (`nopaths-nolet-line` at 10,000 hosts: 53-55 -> 47 MiB, `pve render`
/// 66 -> 61 MiB) for about twice the `madvise` calls (310 -> 670) and no
/// CPU time that could be measured beside the run's. Call it before the
/// first allocation: mimalloc reads its options then.
pub fn purge_at_once() {
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table;
    // it allocates nothing and is safe before mimalloc is initialised.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_number_is_mimallocs_purge_delay() {
        // The number is not named by libmimalloc-sys: a mimalloc whose
        // options moved would have `purge_at_once` set another one. This
        // test process never calls it, so the option holds mimalloc's
        // default, the purge delay's 1000 ms (its neighbours are 1 and 0).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads a number from mimalloc's option table.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}

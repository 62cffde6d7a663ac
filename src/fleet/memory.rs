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

/// mimalloc's `arena_reserve` option (in KiB), by number (libmimalloc-sys
/// names only some of the options).
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

// Pages freed during a run are handed back on mimalloc's own schedule (a
// second later), not at once: since the read frees each part's syntax
// before it parses the next (`split`), a page handed back at once was
// mostly faulted in again at once. At 10,000 hosts `pve check` took 5-16 %
// less CPU without the at-once purge (nopaths-let-spread 193 -> 162 ms,
// classic 298 -> 275 ms, 9 alternating pairs) for 0.4-1.8 MiB more peak,
// `pve render` 3-4 MiB more (all rows stay under issue 18's memory goals:
// benches/README.md, 2026-12-07 third session).

/// Has mimalloc reserve its address space 256 MiB at a time instead of
/// 1 GiB: an arena's bookkeeping grows with its size and is written when
/// the arena is made, 34 page faults of the 403 of `pve --version` (a
/// 10,000-host check peaks at 41-65 MiB; a larger run reserves more
/// arenas). Call it before the first allocation.
pub fn smaller_arenas() {
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table;
    // it allocates nothing and is safe before mimalloc is initialised.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, 256 * 1024) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_number_is_mimallocs_arena_reserve() {
        // The number is not named by libmimalloc-sys: a mimalloc whose
        // options moved would have `smaller_arenas` set another one. This
        // test process never calls it, so the option holds mimalloc's
        // default, 1 GiB in KiB, which is no neighbour's.
        if std::env::var_os("MIMALLOC_ARENA_RESERVE").is_some() {
            return;
        }
        // SAFETY: reads a number from mimalloc's option table.
        let reserve = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_RESERVE) };
        assert_eq!(reserve, 1 << 20);
    }
}

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

/// mimalloc's own `purge_delay`, in milliseconds.
const MIMALLOC_PURGE_DELAY: std::ffi::c_long = 1000;

/// mimalloc's `arena_reserve` option (in KiB), by number as above.
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

/// Has the allocator hand pages back to the system as soon as they are
/// wholly free, instead of a second later (mimalloc's default, longer than
/// a whole `pve check` at 10,000 hosts: nothing freed during the read was
/// returned). The read frees its syntax and scratch on one thread while the
/// other still allocates; kept, they were a sixth of the peak
/// (`nopaths-nolet-line` at 10,000 hosts: 53-55 -> 47 MiB, `pve render`
/// 66 -> 61 MiB) for about twice the `madvise` calls (310 -> 670) and no
/// CPU time that could be measured beside the run's. Called before
/// mimalloc's first arena, so that it holds for every run;
/// [`purge_for_input`] relaxes it where it does not pay.
pub fn purge_at_once() {
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table;
    // it allocates nothing and is safe before mimalloc is initialised.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Up to this size of hosts.nix (about 4,000 hosts) pages freed during the
/// run are returned to the system on mimalloc's own schedule.
pub const PURGE_AT_ONCE_ABOVE: usize = 2 << 20;

/// Sets the purge policy for reading `len` bytes of hosts.nix: at once
/// ([`purge_at_once`]) above [`PURGE_AT_ONCE_ABOVE`], mimalloc's delay below.
/// In a small file a page handed back was mostly faulted in again at once:
/// with the delay `pve check` takes 14 % fewer page faults at 2,000 hosts
/// (3,339 -> 2,883; 1,000 hosts: 1,906 -> 1,705) for 2 % more peak memory
/// (17.3 -> 17.6 MiB), where at 10,000 hosts the delay cost a fifth of the
/// peak (42.7 -> 51.1 MiB). The pages the reading threads free are still
/// returned when they end ([`release_freed`] purges what is due at once).
pub fn purge_for_input(len: usize) {
    if len <= PURGE_AT_ONCE_ABOVE {
        // SAFETY: as in `purge_at_once`: a plain store in mimalloc's option
        // table, which it reads at each purge. Called before the read's
        // threads start.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, MIMALLOC_PURGE_DELAY) }
    }
}

/// Has mimalloc reserve its address space 256 MiB at a time instead of
/// 1 GiB: an arena's bookkeeping grows with its size and is written when
/// the arena is made, 34 page faults of the 403 of `pve --version` (a
/// 10,000-host check peaks at 41-65 MiB; a larger run reserves more
/// arenas). Call it before the first allocation.
pub fn smaller_arenas() {
    // SAFETY: as in `purge_at_once`.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, 256 * 1024) }
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
        assert_eq!(delay, MIMALLOC_PURGE_DELAY);
    }

    #[test]
    fn the_option_number_is_mimallocs_arena_reserve() {
        // As above: its default, 1 GiB in KiB, is no neighbour's.
        if std::env::var_os("MIMALLOC_ARENA_RESERVE").is_some() {
            return;
        }
        // SAFETY: reads a number from mimalloc's option table.
        let reserve = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_RESERVE) };
        assert_eq!(reserve, 1 << 20);
    }
}

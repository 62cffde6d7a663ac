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

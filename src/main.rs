use std::io::Write as _;

// pve allocates many small objects (syntax tree, thunks, values); mimalloc
// is markedly faster at that than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pve_fleet::cli;

fn main() {
    no_core_dumps();
    // Help, version and usage errors come back as errors and end through
    // `exit_now` too (clap's own exit prints the same and flushes the same
    // way).
    let cli = cli::parse().unwrap_or_else(|e| {
        let _ = e.print();
        exit_now(e.exit_code())
    });
    let result = cli::run(cli);
    // An interrupted op fails as a side effect of closing its connection;
    // the interrupt handler owns the exit then (130, after cleanup).
    pve_fleet::remote::ssh::interrupt::wait_if_interrupted();
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            pve_fleet::ui::report_error(&err);
            err.exit_code()
        }
    };
    exit_now(code.into())
}

/// Ends the process once its output is flushed, without the C library's
/// exit handlers. The one that has work is mimalloc's: at exit it purges
/// the main thread's free pages one `madvise` at a time (32 calls after
/// the last line of a 1,000-host `pve check`, 37 at 10,000 hosts, some of
/// 4 MiB) that the kernel's teardown of the process would free anyway.
///
/// Safe here because nothing is left to run on drop: `cli::run` has
/// returned, so every temp file, lock and child it held is dropped and
/// cleaned up, and an interrupt's cleanup has finished (it owns the exit
/// then). Rust does not drop statics at exit, and stdout is the only
/// buffer (stderr writes through): it is flushed as Rust's own exit
/// would, a failed flush (closed pipe) ignored as it does. (`pve
/// --version` 27 `madvise` calls fewer; 1,000 hosts `pve check` 32.)
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: _exit takes a plain integer and ends the process; see above
    // for why no cleanup is skipped.
    unsafe { libc::_exit(code) }
}

/// pve holds secrets (the API token, the Tailscale client secret, age
/// identities) in memory: a crash must not write them into a core file.
fn no_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct passed by reference and only
    // changes this process's limit.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

/// With transparent huge pages the allocator's partly used 2 MiB regions
/// count in full: a 10,000-host `pve check` peaks at 76 MiB instead of
/// 70 MiB, for about 20 ms saved (benches/README.md). A short-lived tool is
/// better off small.
///
/// It runs from `.preinit_array`, before any constructor and so before
/// mimalloc's first arena: mimalloc advises huge pages on its arenas, and
/// a first allocation made before `main` (the runtime's) faulted a whole
/// 2 MiB page that stayed (`pve --version` 9.6 MiB with the call in
/// `main`, 5.8 MiB with it here; `pve check` on the classic fleet at
/// 10,000 hosts about 2.5 MiB less).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".preinit_array")]
static NO_HUGE_PAGES: extern "C" fn() = no_huge_pages;

#[cfg(target_os = "linux")]
extern "C" fn no_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes plain integers and only sets
    // a flag on this process; it cannot touch memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Also before mimalloc's first arena: its options are read then.
    pve_fleet::fleet::memory::smaller_arenas();
}

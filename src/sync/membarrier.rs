//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: the remote side of the pcp's asymmetric
//! barrier. Registered once per process; under Miri (`cfg(miri)`) or with
//! `PAGEALLOC_NO_MEMBARRIER` set it counts as unavailable, and both sides of every barrier are
//! full fences.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

static REGISTERED: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

fn sys(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` takes only integers and touches no
    // memory of ours; an unknown command or an old kernel returns -1 (ENOSYS/EINVAL).
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

pub(super) fn init() {
    INIT.call_once(|| {
        // Miri cannot run the `membarrier` syscall (`libc::syscall` is unsupported there):
        // treat it as unavailable, so both sides of every barrier are full fences.
        if cfg!(miri) || std::env::var_os("PAGEALLOC_NO_MEMBARRIER").is_some() {
            return;
        }
        let q = sys(MEMBARRIER_CMD_QUERY);
        let need = MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
        if q >= 0 && q & need == need && sys(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
            REGISTERED.store(true, Ordering::SeqCst);
        }
    });
}

#[inline]
pub(super) fn registered() -> bool {
    REGISTERED.load(Ordering::Relaxed)
}

/// Issue the barrier; false if membarriers are not in use (then the caller fences).
pub(super) fn barrier() -> bool {
    if !registered() {
        return false;
    }
    // Owners rely on this barrier once registered: a failure here cannot be papered over
    // with a local fence.
    let r = sys(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    assert!(
        r == 0,
        "membarrier(PRIVATE_EXPEDITED) failed after registration"
    );
    true
}

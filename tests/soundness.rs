//! Soundness under misuse: no sequence of safe calls may hand one block to two owners, free a
//! block twice, wait on a lock its own thread holds, or leave an isolation, a reservation or a
//! page behind when a race hook panics. Each test names the misuse, asserts the typed error or
//! the panic message, and ends with a clean audit and every page free.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

mod common;

use common::all_free;
use pagealloc::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock, Weak};

fn zone(cma_mib: usize) -> Zone {
    Zone::new(ZoneConfig {
        size: 16 << 20,
        cma_size: cma_mib << 20,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// Run `op` on two threads released together; how many of them it succeeded on.
fn winners_of_two(op: impl Fn() -> bool + Sync) -> u64 {
    let wins = AtomicU64::new(0);
    let b = Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                b.wait();
                if op() {
                    wins.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    wins.load(Ordering::Relaxed)
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    match e.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

// ---- 1. freeing what a live handle owns ----

#[test]
fn free_pfn_refuses_a_block_a_pages_handle_owns() {
    let z = zone(0);
    for order in [0, 3] {
        let mut a = z.alloc_pages(Order(order), Migratetype::Movable).unwrap();
        a.as_mut_slice().fill(0xa5);
        assert_eq!(
            z.free_pfn(a.pfn(), Order(order)),
            Err(FreeError::HandleOwned(a.pfn()))
        );
        z.drain_all_pages();
        // The refused free lost nothing and gave nothing away: the next block is another one.
        let mut b = z.alloc_pages(Order(order), Migratetype::Movable).unwrap();
        assert_ne!(a.pfn(), b.pfn());
        b.as_mut_slice().fill(0x5a);
        assert!(a.as_slice().iter().all(|&x| x == 0xa5));
        // Handed to the pfn API, the block is the caller's to free, once.
        let pa = a.into_pfn();
        z.free_pfn(pa, Order(order)).unwrap();
        assert_eq!(z.free_pfn(pa, Order(order)), Err(FreeError::DoubleFree(pa)));
        drop(b);
    }
    all_free(&z);
}

#[test]
fn free_pfn_refuses_movable_blocks_pinned_or_not() {
    let z = zone(0);
    let mut m = z.alloc_movable(Order(1)).unwrap();
    let p = m.pfn();
    assert_eq!(z.free_pfn(p, Order(1)), Err(FreeError::HandleOwned(p)));
    {
        let mut pin = m.pin();
        pin.as_mut_slice().fill(7);
        assert_eq!(z.free_pfn(p, Order(1)), Err(FreeError::HandleOwned(p)));
        assert_eq!(z.free_contig_range(p, 2), Err(FreeError::HandleOwned(p)));
    }
    assert!(m.pin().as_slice().iter().all(|&x| x == 7));
    drop(m);
    all_free(&z);
}

/// A refused free leaves no stale registry entry: a later `alloc_contig_range` over the
/// movable block moves that block's bytes with it and touches no other handle's bytes.
#[test]
fn migration_after_a_refused_free_moves_only_the_right_block() {
    let z = zone(0);
    let mut m = z.alloc_movable(Order(0)).unwrap();
    m.pin().as_mut_slice().fill(0x11);
    let at = m.pfn();
    assert!(z.free_pfn(at, Order(0)).is_err());
    z.drain_all_pages();
    let mut others: Vec<_> = (0..64)
        .map(|i| {
            let mut p = z.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            p.as_mut_slice().fill(i as u8);
            p
        })
        .collect();
    others.retain(|p| p.pfn() != at); // (none is: the refused free changed nothing)
    assert_eq!(others.len(), 64);
    // Make room below: the handles above hold no pfn in the range.
    let top = z.geometry().max_order_nr_pages();
    let start = Pfn(at.0 & !(top - 1));
    let range_has_other = others
        .iter()
        .any(|p| p.pfn() >= start && p.pfn().0 < start.0 + top);
    if !range_has_other {
        z.alloc_contig_range(start, start.add(top), Migratetype::Movable)
            .unwrap();
        assert_ne!(m.pfn(), at, "the movable block was not moved out");
        z.free_contig_range(start, top).unwrap();
    }
    assert!(m.pin().as_slice().iter().all(|&x| x == 0x11));
    for (i, p) in others.iter().enumerate() {
        assert!(p.as_slice().iter().all(|&x| x == i as u8));
    }
    drop((m, others));
    all_free(&z);
}

#[test]
fn cma_pages_cannot_be_freed_page_by_page() {
    let z = zone(4);
    let cma = z.cma().unwrap();
    let mut c = cma.alloc(16, Order(0)).unwrap();
    c.as_mut_slice().fill(3);
    let p = c.pfn();
    assert_eq!(
        z.free_pfn(p.add(5), Order(0)),
        Err(FreeError::HandleOwned(p.add(5)))
    );
    assert_eq!(z.free_contig_range(p, 16), Err(FreeError::HandleOwned(p)));
    assert!(c.as_slice().iter().all(|&x| x == 3));
    drop(c);
    all_free(&z);
}

#[test]
fn racing_pfn_frees_of_one_block_exactly_one_wins() {
    let z = zone(0);
    for _ in 0..200 {
        let p = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
        assert_eq!(winners_of_two(|| z.free_pfn(p, Order(0)).is_ok()), 1);
    }
    all_free(&z);
}

#[test]
fn free_contig_range_is_all_or_nothing() {
    let z = zone(0);
    let top = z.geometry().max_order_nr_pages();
    let s = Pfn(top); // the second top-order block
    z.alloc_contig_range(s, s.add(8), Migratetype::Movable)
        .unwrap();
    z.free_pfn(s.add(5), Order(0)).unwrap();
    z.drain_all_pages();
    assert!(z.free_contig_range(s, 8).is_err());
    // Nothing was freed: pages 0..5 are still allocated (each frees exactly once now).
    z.free_contig_range(s, 5).unwrap();
    assert_eq!(z.free_contig_range(s, 5), Err(FreeError::DoubleFree(s)));
    z.free_contig_range(s.add(6), 2).unwrap();
    all_free(&z);
}

// ---- 2. releasing CMA twice ----

#[test]
fn cma_release_pfn_refuses_live_freed_and_released_ranges() {
    let z = zone(4);
    let cma = z.cma().unwrap();
    let mut live = cma.alloc(8, Order(3)).unwrap();
    live.as_mut_slice().fill(9);
    let (lp, ln) = (live.pfn(), live.count());
    assert!(matches!(
        cma.release_pfn(lp, ln),
        Err(CmaError::NotAllocated { .. })
    ));
    assert!(live.as_slice().iter().all(|&x| x == 9));
    drop(live);

    let h = cma.alloc(8, Order(3)).unwrap();
    let p = h.into_pfn();
    // The zone's own frees refuse a CMA allocation's pages: release_pfn owns them.
    assert_eq!(z.free_contig_range(p, 8), Err(FreeError::CmaAllocation(p)));
    assert_eq!(
        z.free_pfn(p.add(1), Order(0)),
        Err(FreeError::CmaAllocation(p.add(1)))
    );
    // Part of the range beyond it is not an allocation: all refused.
    assert!(cma.release_pfn(p, 9).is_err());
    cma.release_pfn(p, 4).unwrap();
    assert!(cma.release_pfn(p, 8).is_err());
    cma.release_pfn(p.add(4), 4).unwrap();
    assert!(cma.release_pfn(p.add(4), 4).is_err());
    all_free(&z);
}

#[test]
fn racing_cma_releases_of_one_range_exactly_one_wins() {
    let z = zone(4);
    let cma = z.cma().unwrap();
    for _ in 0..100 {
        let p = cma.alloc(4, Order(2)).unwrap().into_pfn();
        assert_eq!(winners_of_two(|| cma.release_pfn(p, 4).is_ok()), 1);
    }
    all_free(&z);
}

// ---- 3. hooks that re-enter or panic ----

type Action = Box<dyn Fn(&Zone, RaceWindow, Pfn) + Send + Sync>;

/// Runs `action` with the zone the first time (or every time) an armed thread reaches
/// `window`.
struct Scripted {
    zone: OnceLock<Weak<Zone>>,
    window: RaceWindow,
    armed: AtomicBool,
    once: bool,
    action: Action,
}

impl RaceHook for Scripted {
    fn window(&self, w: RaceWindow, pfn: Pfn) {
        if w != self.window || !self.armed.load(Ordering::SeqCst) {
            return;
        }
        if self.once && !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        let z = self.zone.get().unwrap().upgrade().unwrap();
        (self.action)(&z, w, pfn);
    }
}

fn scripted(
    cfg: ZoneConfig,
    window: RaceWindow,
    once: bool,
    action: impl Fn(&Zone, RaceWindow, Pfn) + Send + Sync + 'static,
) -> (Arc<Zone>, Arc<Scripted>) {
    let hook = Arc::new(Scripted {
        zone: OnceLock::new(),
        window,
        armed: AtomicBool::new(false),
        once,
        action: Box::new(action),
    });
    let z = Arc::new(
        Zone::new(ZoneConfig {
            race_hook: Some(hook.clone()),
            ..cfg
        })
        .unwrap(),
    );
    hook.zone.set(Arc::downgrade(&z)).ok().unwrap();
    (z, hook)
}

fn small(cma_mib: usize) -> ZoneConfig {
    ZoneConfig {
        size: 16 << 20,
        cma_size: cma_mib << 20,
        fixes: Fixes::ALL,
        pcp: Some(PcpConfig { high: 8, batch: 4 }),
        ..ZoneConfig::default()
    }
}

/// Run `f` on a new thread; it must panic with a message containing every one of `expect`.
fn expect_panic(f: impl FnOnce() + Send, expect: &[&str]) {
    let res = std::thread::scope(|s| s.spawn(f).join());
    let msg = panic_message(res.expect_err("no panic"));
    for e in expect {
        assert!(msg.contains(e), "panic message {msg:?} lacks {e:?}");
    }
}

/// Free-path windows (a block in mid-free, or a pcp held below the hook): a hook may
/// allocate and free, served from the buddy lists without touching the pcp the interrupted
/// path holds (no second `&mut` to it), and the interrupted free completes.
#[test]
fn hooks_in_free_windows_may_allocate_and_free() {
    for (window, order) in [
        (RaceWindow::PcpBulkBeforeZoneLock, 0),
        (RaceWindow::FreeBeforePcpAdd, 0),
        (RaceWindow::FreeBeforeZoneLock, 2),
    ] {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let (z, hook) = scripted(small(0), window, true, move |z, _, _| {
            let mut a = z.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            let mut b = z.alloc_pages(Order(3), Migratetype::Unmovable).unwrap();
            a.as_mut_slice().fill(1);
            b.as_mut_slice().fill(2);
            let pfn = z.alloc_pfn(Order(0), Migratetype::Reclaimable).unwrap();
            z.free_pfn(pfn, Order(0)).unwrap();
            c.fetch_add(1, Ordering::SeqCst);
        });
        std::thread::scope(|s| {
            s.spawn(|| {
                let held: Vec<_> = (0..16)
                    .map(|_| z.alloc_pages(Order(order), Migratetype::Movable).unwrap())
                    .collect();
                hook.armed.store(true, Ordering::SeqCst);
                drop(held);
            });
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{window:?}");
        all_free(&z);
    }
}

/// Free-path windows: what walks every pcp (`drain_all_pages`, and so isolation and CMA),
/// or would wait on itself, panics with a message naming the window, and the zone is whole
/// afterwards (no lock left held, no page lost).
#[test]
fn hook_draining_from_free_windows_panics_naming_the_window() {
    type Call = (&'static str, fn(&Zone));
    let calls: [Call; 3] = [
        ("drain_all_pages", |z| z.drain_all_pages()),
        ("drain_all_pages", |z| {
            let _ = z.set_migratetype_isolate(Pfn(2048));
        }),
        ("Cma::alloc", |z| {
            let _ = z.cma().unwrap().alloc(1, Order(0));
        }),
    ];
    for (window, order) in [
        (RaceWindow::PcpBulkBeforeZoneLock, 0),
        (RaceWindow::FreeBeforePcpAdd, 0),
        (RaceWindow::FreeBeforeZoneLock, 2),
    ] {
        for (what, call) in calls {
            let (z, hook) = scripted(small(4), window, true, move |z, _, _| call(z));
            expect_panic(
                || {
                    let held: Vec<_> = (0..16)
                        .map(|_| z.alloc_pages(Order(order), Migratetype::Movable).unwrap())
                        .collect();
                    hook.armed.store(true, Ordering::SeqCst);
                    drop(held);
                },
                &["RaceHook", what, &format!("RaceWindow::{window:?}")],
            );
            assert!(!hook.armed.load(Ordering::SeqCst), "{window:?} never fired");
            let p = z.alloc_pages(Order(order), Migratetype::Movable).unwrap();
            drop(p);
            all_free(&z);
        }
    }
}

/// A hook inside `drain_all_pages` (every pcp and the registry held) that drains again.
#[test]
fn hook_draining_from_inside_drain_all_pages_panics() {
    let (z, hook) = scripted(
        small(0),
        RaceWindow::PcpBulkBeforeZoneLock,
        true,
        |z, _, _| z.drain_all_pages(),
    );
    let held: Vec<_> = (0..4)
        .map(|_| z.alloc_pages(Order(0), Migratetype::Movable).unwrap())
        .collect();
    drop(held); // 4 pages on this thread's pcp (high 8)
    expect_panic(
        || {
            hook.armed.store(true, Ordering::SeqCst);
            z.drain_all_pages();
        },
        &["drain_all_pages", "RaceWindow::PcpBulkBeforeZoneLock"],
    );
    all_free(&z);
}

/// The isolation windows allow zone calls: allocate, write, free, drain and audit from one.
#[test]
fn hook_may_call_the_zone_from_isolation_windows() {
    for window in [
        RaceWindow::IsolateBeforeDrain,
        RaceWindow::IsolateBetweenPageblocks,
    ] {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let (z, hook) = scripted(small(0), window, false, move |z, _, _| {
            let mut a = z.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
            let mut b = z.alloc_pages(Order(3), Migratetype::Movable).unwrap();
            a.as_mut_slice().fill(1);
            b.as_mut_slice().fill(2);
            drop((a, b));
            z.drain_all_pages();
            assert!(z.audit().is_ok());
            c.fetch_add(1, Ordering::SeqCst);
        });
        hook.armed.store(true, Ordering::SeqCst);
        z.start_isolate_page_range(Pfn(2048), Pfn(4096), Migratetype::Movable)
            .unwrap();
        z.undo_isolate_page_range(Pfn(2048), Pfn(4096), Migratetype::Movable)
            .unwrap();
        hook.armed.store(false, Ordering::SeqCst);
        assert!(calls.load(Ordering::SeqCst) >= 2, "{window:?}");
        all_free(&z);
    }
}

/// `Cma::alloc` from a hook inside `Cma::alloc` of the same zone: a panic naming the
/// `cma_mutex`, not a deadlock; the outer allocation's isolation and reservation are undone.
#[test]
fn nested_cma_alloc_from_a_hook_panics_and_undoes_the_outer_one() {
    let (z, hook) = scripted(small(4), RaceWindow::IsolateBeforeDrain, true, |z, _, _| {
        let _ = z.cma().unwrap().alloc(4, Order(0));
    });
    expect_panic(
        || {
            hook.armed.store(true, Ordering::SeqCst);
            let _ = z.cma().unwrap().alloc(64, Order(0));
        },
        &["Cma::alloc", "cma_mutex", "RaceWindow::IsolateBeforeDrain"],
    );
    all_free(&z);
    let c = z.cma().unwrap().alloc(64, Order(0)).unwrap();
    drop(c);
    all_free(&z);
}

/// `release_pfn` of a range whose allocation is still in flight (called from a hook inside
/// that allocation): refused.
#[test]
fn cma_release_of_an_allocation_in_flight_is_refused() {
    let seen = Arc::new(Mutex::new(None));
    let s2 = seen.clone();
    let (z, hook) = scripted(
        small(4),
        RaceWindow::IsolateBeforeDrain,
        true,
        move |z, _, pfn| {
            let cma = z.cma().unwrap();
            *s2.lock().unwrap() = Some(cma.release_pfn(pfn.max(cma.area().base_pfn()), 16));
        },
    );
    hook.armed.store(true, Ordering::SeqCst);
    let c = z.cma().unwrap().alloc(16, Order(4)).unwrap();
    assert!(matches!(
        seen.lock().unwrap().take(),
        Some(Err(CmaError::NotAllocated { .. }))
    ));
    drop(c);
    all_free(&z);
}

/// A hook that panics at each window inside `Cma::alloc`: no isolation, no reservation and
/// no page are left behind, and the next allocation works.
#[test]
fn panicking_hooks_inside_cma_alloc_leave_nothing_behind() {
    for window in [
        RaceWindow::IsolateBetweenPageblocks,
        RaceWindow::IsolateBeforeDrain,
        RaceWindow::FreeBeforeZoneLock,
        RaceWindow::FreeBeforePcpAdd,
        RaceWindow::PcpBulkBeforeZoneLock,
    ] {
        let (z, hook) = scripted(small(8), window, true, move |_, w, _| {
            panic!("test hook panics at {w:?}")
        });
        // Movable blocks in the CMA area, so the allocation migrates (and frees) pages.
        let mut held = Vec::new();
        while let Ok(m) = z.alloc_movable(Order(0)) {
            held.push(m);
        }
        let cma_start = z.cma().unwrap().area().base_pfn();
        held.retain(|m| m.pfn() >= cma_start);
        let a_block = 512 * 2;
        held.truncate(a_block * 2); // room to migrate into
        expect_panic(
            || {
                hook.armed.store(true, Ordering::SeqCst);
                let _ = z.cma().unwrap().alloc(a_block as u64, Order(0));
            },
            &["test hook panics"],
        );
        assert!(!hook.armed.load(Ordering::SeqCst), "{window:?} never fired");
        assert_eq!(z.nr_isolate_pageblock(), 0, "{window:?}");
        assert_eq!(z.cma().unwrap().area().used(), 0, "{window:?}");
        let c = z.cma().unwrap().alloc(a_block as u64, Order(0)).unwrap();
        drop((c, held));
        all_free(&z);
    }
}

/// Panics in the isolation windows of plain isolation and offline calls undo the isolation.
#[test]
fn panicking_hooks_in_isolation_calls_leave_no_isolation() {
    type Op = (&'static str, RaceWindow, fn(&Zone));
    let ops: [Op; 4] = [
        ("set", RaceWindow::IsolateBeforeDrain, |z| {
            let _ = z.set_migratetype_isolate(Pfn(512));
        }),
        ("start", RaceWindow::IsolateBetweenPageblocks, |z| {
            let _ = z.start_isolate_page_range(Pfn(0), Pfn(2048), Migratetype::Movable);
        }),
        ("undo", RaceWindow::IsolateBetweenPageblocks, |z| {
            z.start_isolate_page_range(Pfn(0), Pfn(2048), Migratetype::Movable)
                .unwrap();
        }),
        ("offline", RaceWindow::IsolateBeforeDrain, |z| {
            let _ = z.offline_pages(Pfn(1024), Pfn(2048));
        }),
    ];
    for (name, window, op) in ops {
        let (z, hook) = scripted(small(0), window, true, |_, w, _| {
            panic!("test hook panics at {w:?}")
        });
        if name == "undo" {
            op(&z);
            expect_panic(
                || {
                    hook.armed.store(true, Ordering::SeqCst);
                    let _ = z.undo_isolate_page_range(Pfn(0), Pfn(2048), Migratetype::Movable);
                },
                &["test hook panics"],
            );
        } else {
            expect_panic(
                || {
                    hook.armed.store(true, Ordering::SeqCst);
                    op(&z);
                },
                &["test hook panics"],
            );
        }
        assert_eq!(z.nr_isolate_pageblock(), 0, "{name}");
        for b in 0..z.geometry().nr_pageblocks {
            let t = z.pageblock_migratetype(Pfn(b * 512)).unwrap();
            assert!(!t.is_isolate(), "{name}: pageblock {b} left {t}");
        }
        all_free(&z);
    }
}

/// A hook that panics during a thread's exit drain: caught there (unwinding out of a
/// thread-local destructor would abort the process); the pages stay on the pcp for the next
/// `drain_all_pages`.
#[test]
fn panicking_hook_in_a_thread_exit_drain_does_not_abort() {
    let (z, hook) = scripted(
        small(0),
        RaceWindow::PcpBulkBeforeZoneLock,
        true,
        |_, w, _| panic!("test hook panics at {w:?}"),
    );
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            let held: Vec<_> = (0..4)
                .map(|_| z.alloc_pages(Order(0), Migratetype::Movable).unwrap())
                .collect();
            drop(held); // 4 pages on this thread's pcp, drained at its exit
            hook.armed.store(true, Ordering::SeqCst);
        })
        .join()
    });
    assert!(res.is_ok());
    assert!(
        !hook.armed.load(Ordering::SeqCst),
        "the exit drain never reached the hook"
    );
    all_free(&z);
}

/// A panic while this thread's own catch_unwind is on the stack leaves the thread usable:
/// its window record and pcp cache are restored.
#[test]
fn a_caught_hook_panic_leaves_the_thread_usable() {
    let (z, hook) = scripted(small(0), RaceWindow::FreeBeforeZoneLock, true, |_, w, _| {
        panic!("test hook panics at {w:?}")
    });
    let p = z.alloc_pages(Order(1), Migratetype::Movable).unwrap();
    hook.armed.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| drop(p)));
    assert!(r.is_err());
    // Order-0 traffic on the same thread, through its pcp, still works.
    for _ in 0..64 {
        drop(z.alloc_pages(Order(0), Migratetype::Movable).unwrap());
    }
    all_free(&z);
}

// ---- 6. pathological time ----

fn vmstat(z: &Zone, key: &str) -> u64 {
    z.vmstat()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in vmstat"))
}

/// Every CMA page pinned: `Cma::alloc` reports no space after a bounded number of
/// migration attempts — each candidate range gives up at its first busy block, instead of
/// trying every page of every candidate (which took about 100 s).
#[test]
fn cma_alloc_over_a_pinned_area_fails_in_bounded_work() {
    let z = Zone::new(ZoneConfig {
        size: 32 << 20,
        cma_size: 16 << 20,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .unwrap();
    let area = z.cma().unwrap().area();
    let mut handles = Vec::new();
    while let Ok(m) = z.alloc_movable(Order(0)) {
        handles.push(m);
    }
    handles.retain(|m| m.pfn() >= area.base_pfn()); // free the rest: room to migrate into
    assert_eq!(handles.len() as u64, area.count());
    let pins: Vec<_> = handles.iter_mut().map(|m| m.pin()).collect();
    let fails_before = vmstat(&z, "pgmigrate_fail");
    let r = z.cma().unwrap().alloc(1024, Order(0));
    assert!(
        matches!(
            r,
            Err(CmaError::NoSpace {
                last: Some(IsolateError::Busy(_))
            })
        ),
        "{r:?}"
    );
    let fails = vmstat(&z, "pgmigrate_fail") - fails_before;
    // At most 5 rounds on one busy block per candidate, at most one candidate per page.
    assert!(fails <= 5 * area.count(), "{fails} failed migrations");
    drop(pins);
    drop(handles);
    all_free(&z);
}

// ---- 7. edges ----

#[test]
fn free_contig_range_at_the_end_of_the_pfn_space() {
    let z = zone(0);
    let n = z.geometry().nr_pages;
    assert_eq!(
        z.free_contig_range(Pfn(u64::MAX), 1),
        Err(FreeError::Foreign(Pfn(u64::MAX)))
    );
    assert_eq!(
        z.free_contig_range(Pfn(u64::MAX - 1), 4),
        Err(FreeError::Foreign(Pfn(u64::MAX - 1)))
    );
    let last = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
    assert_eq!(
        z.free_contig_range(Pfn(n - 1), 2),
        Err(FreeError::Foreign(Pfn(n)))
    );
    z.free_pfn(last, Order(0)).unwrap();
    all_free(&z);
}

//! Faults: threads that panic while holding a pinned movable page or in the middle of pcp
//! operations leave no lock held and lose no page.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

mod common;

use common::all_free;
use pagealloc::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn cma_zone(hook: Option<Arc<dyn RaceHook>>) -> Zone {
    Zone::new(ZoneConfig {
        size: 32 << 20,
        cma_size: 8 << 20,
        cma_policy: CmaPolicy::Aggressive,
        fixes: Fixes::ALL,
        race_hook: hook,
        ..ZoneConfig::default()
    })
    .unwrap()
}

#[test]
fn panic_while_pinned_unpins_and_frees() {
    let z = cma_zone(None);
    let base = z.cma().unwrap().area().base_pfn();
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            let mut keep = Vec::new();
            // A movable block inside the CMA area, pinned when the thread panics.
            let mut p = loop {
                let p = z.alloc_movable(Order(0)).unwrap();
                if p.pfn() >= base {
                    break p;
                }
                keep.push(p);
            };
            let mut g = p.pin();
            g.as_mut_slice()[0] = 1;
            panic!("worker dies holding a pin");
        })
        .join()
    });
    assert!(res.is_err());
    // The guard and the handle unwound: the pin word is free, the page freed, nothing locked.
    assert_eq!(z.nr_movable(), 0);
    all_free(&z);
    let a = z.cma().unwrap().alloc(2048, Order(0)).unwrap();
    drop(a);
    all_free(&z);
}

#[test]
fn panic_holding_a_handle_that_a_migrator_wants() {
    let z = cma_zone(None);
    let base = z.cma().unwrap().area().base_pfn();
    let mut keep = Vec::new();
    let mut p = loop {
        let p = z.alloc_movable(Order(0)).unwrap();
        if p.pfn() >= base {
            break p;
        }
        keep.push(p);
    };
    p.pin().as_mut_slice().fill(7);
    let pfn = p.pfn();
    std::thread::scope(|s| {
        let z = &z;
        // A thread that pinned the handle's neighbour dies; the migrator still gets through.
        let _ = s.spawn(|| panic!("unrelated panic")).join();
        s.spawn(move || {
            z.alloc_contig_range(pfn, pfn.add(1), Migratetype::Cma)
                .unwrap();
            z.free_contig_range(pfn, 1).unwrap();
        })
        .join()
        .unwrap();
    });
    let moved_to = p.pfn();
    assert_ne!(moved_to, pfn, "the block was not migrated out of the range");
    assert!(p.pin().as_slice().iter().all(|b| *b == 7));
    drop((p, keep));
    all_free(&z);
}

/// A hook that panics once, at one window.
struct PanicOnce {
    window: RaceWindow,
    armed: AtomicBool,
}

impl RaceHook for PanicOnce {
    fn window(&self, w: RaceWindow, _pfn: Pfn) {
        if w == self.window && self.armed.swap(false, Ordering::SeqCst) {
            panic!("hook panics at {w:?}");
        }
    }
}

fn panic_at(window: RaceWindow, order: u32) {
    let hook = Arc::new(PanicOnce {
        window,
        armed: AtomicBool::new(false),
    });
    let z = Zone::new(ZoneConfig {
        size: 16 << 20,
        fixes: Fixes::ALL,
        pcp: Some(PcpConfig { high: 8, batch: 4 }),
        race_hook: Some(hook.clone()),
        ..ZoneConfig::default()
    })
    .unwrap();
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            let held: Vec<_> = (0..8)
                .map(|_| z.alloc_pages(Order(order), Migratetype::Movable).unwrap())
                .collect();
            hook.armed.store(true, Ordering::SeqCst);
            drop(held); // the hook panics in one of these frees
        })
        .join()
    });
    assert!(res.is_err(), "the hook did not fire at {window:?}");
    // No lock is left held (these would deadlock) and no page is lost.
    let p = z.alloc_pages(Order(0), Migratetype::Movable).unwrap();
    drop(p);
    all_free(&z);
}

#[test]
fn panic_before_a_page_enters_the_pcp() {
    panic_at(RaceWindow::FreeBeforePcpAdd, 0);
}

#[test]
fn panic_inside_a_pcp_bulk_free_with_the_pcp_lock_held() {
    panic_at(RaceWindow::PcpBulkBeforeZoneLock, 0);
}

#[test]
fn panic_before_the_zone_lock_on_a_direct_free() {
    panic_at(RaceWindow::FreeBeforeZoneLock, 2);
}

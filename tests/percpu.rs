//! `PcpMode::PerCpu`: pcps that belong to CPUs, drained by "IPI", never at thread exit; R2 as
//! the kernel had it; the vmstat diffs and what a 3.17 reader of the counters sees; stranding.
mod common;
use common::*;
use pagealloc::*;

fn tiny_cma_cpus(fixes: Fixes, cpus: u32) -> Zone {
    Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes,
        pcp_mode: PcpMode::PerCpu(cpus),
        ..ZoneConfig::tiny(16)
    })
    .unwrap()
}

/// Run `f` on a new thread bound to `cpu`, and wait for it to exit.
fn on_cpu<R: Send>(cpu: usize, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(move || {
            set_thread_cpu(Some(cpu));
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn bad_cpu_counts_are_refused() {
    for cpus in [0, MAX_CPUS + 1] {
        let e = Zone::new(ZoneConfig {
            pcp_mode: PcpMode::PerCpu(cpus),
            ..ZoneConfig::tiny(16)
        })
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::BadCpus { cpus: c } if c == cpus),
            "{e}"
        );
    }
    let z = tiny_cma_cpus(Fixes::ALL, MAX_CPUS);
    assert_eq!(z.pcp_mode(), PcpMode::PerCpu(MAX_CPUS));
}

#[test]
fn a_cpu_pcp_outlives_the_thread_and_serves_the_next_one_on_that_cpu() {
    let zone = tiny_cma_cpus(Fixes::ALL, 2);
    let pfn = on_cpu(1, || {
        let p = zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
        zone.free_pfn(p, Order(0)).unwrap();
        p
    });
    // No drain at thread exit: the refill's batch (2) is still on CPU 1's pcp.
    assert_eq!(zone.audit().pcp_pages, 2);
    // Another thread on CPU 1 gets the hot page back; one on CPU 0 refills its own pcp.
    assert_eq!(
        on_cpu(1, || zone
            .alloc_pfn(Order(0), Migratetype::Movable)
            .unwrap()),
        pfn
    );
    let other = on_cpu(0, || {
        zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap()
    });
    assert_ne!(other, pfn);
    zone.drain_all_pages();
    let r = zone.audit();
    r.assert_ok();
    assert_eq!((r.pcp_pages, r.allocated_pages), (0, 2));
}

/// R2 with CPUs: a page freed on CPU 1 sits on CPU 1's pcp with the cached type CMA after its
/// thread is gone; CPU 0 isolates the pageblock, and the drain "IPI" to CPU 1 frees the page
/// by its cached type.
fn r2(fixes: Fixes) -> AuditReport {
    let zone = tiny_cma_cpus(fixes, 2);
    fill(&zone, Order(0));
    free_now(&zone, 9, 0);
    on_cpu(1, || zone.free_pfn(Pfn(8), Order(0)).unwrap());
    assert_eq!(zone.audit().pcp_pages, 1);
    on_cpu(0, || zone.set_migratetype_isolate(Pfn(8)).unwrap());
    zone.audit()
}

#[test]
fn r2_3_17_on_cpus() {
    let r = r2(Fixes::NONE);
    assert_r2_misplacement(&r);
}

#[test]
fn r2_on_cpus_fixed_by_patch_2() {
    for fixes in [
        Fixes::RECHECK_PCP_BULK,
        Fixes::SEED,
        Fixes::V3_18,
        Fixes::ALL,
    ] {
        r2(fixes).assert_ok();
    }
}

/// vmstat: updates sit in the CPU's diff until they pass `stat_threshold`; the audit's exact
/// count is the folded value plus the diffs; `vmstat_update` folds them.
#[test]
fn vmstat_diffs_lag_until_folded() {
    // 64 MiB, 2 CPUs: stat_threshold 2 * fls(2) * (1 + fls(0)) = 4.
    let zone = Zone::new(ZoneConfig {
        size: 64 << 20,
        pcp: Some(PcpConfig { high: 96, batch: 1 }),
        pcp_mode: PcpMode::PerCpu(2),
        ..ZoneConfig::default()
    })
    .unwrap();
    assert_eq!(zone.geometry().stat_threshold, 4);
    let total = zone.zone_page_state(ZoneStatItem::NrFreePages);
    assert_eq!(total, 16384);
    // Three refills of one page each on CPU 1: NR_FREE_PAGES -3, within the threshold.
    let pages: Vec<Pfn> = on_cpu(1, || {
        (0..3)
            .map(|_| zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
            .collect()
    });
    assert_eq!(zone.zone_page_state(ZoneStatItem::NrFreePages), total);
    assert_eq!(
        zone.zone_page_state_snapshot(ZoneStatItem::NrFreePages),
        total as i64 - 3
    );
    let r = zone.audit();
    assert_eq!(
        (r.nr_free_pages, r.vmstat_free_pages),
        (total as i64 - 3, total as i64)
    );
    r.assert_ok();
    // Two more: -5 passes the threshold and folds.
    on_cpu(1, || {
        for _ in 0..2 {
            zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
        }
    });
    assert_eq!(zone.zone_page_state(ZoneStatItem::NrFreePages), total - 5);
    // One more stays in the diff until vmstat_update.
    let last = on_cpu(0, || {
        zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap()
    });
    assert_eq!(zone.zone_page_state(ZoneStatItem::NrFreePages), total - 5);
    zone.vmstat_update();
    assert_eq!(zone.zone_page_state(ZoneStatItem::NrFreePages), total - 6);
    for p in pages.into_iter().chain([last]) {
        zone.free_pfn(p, Order(0)).unwrap();
    }
    zone.drain_all_pages();
    zone.audit().assert_ok();
}

/// `/proc/zoneinfo` prints one pageset per CPU and the folded `nr_free_pages`.
#[test]
fn zoneinfo_shows_every_cpu_and_the_folded_counter() {
    let zone = Zone::new(ZoneConfig {
        size: 64 << 20,
        pcp_mode: PcpMode::PerCpu(4),
        ..ZoneConfig::default()
    })
    .unwrap();
    let text = zone.zoneinfo();
    for cpu in 0..4 {
        assert!(
            text.contains(&format!("\n    cpu: {cpu}\n              count: 0\n")),
            "{text}"
        );
    }
    assert!(!text.contains("cpu: 4"));
    // 64 MiB, 4 CPUs: 2 * fls(4) * 1 = 6.
    assert!(text.contains("\n  vm stats threshold: 6\n"), "{text}");
}

/// Stranding: 512 live threads each leave pages on the pcps (on 2 CPUs' pcps, or on their
/// own), then one thread allocates every page of the zone: the slow path's `drain_all_pages`
/// gets the cached pages back before an allocation fails. In per-CPU mode at most
/// `cpus * high` pages can sit in caches at all.
#[test]
fn no_allocation_fails_while_pages_sit_on_pcps() {
    for mode in [PcpMode::PerCpu(2), PcpMode::PerThread] {
        let zone = Zone::new(ZoneConfig {
            size: 64 << 20,
            pcp_mode: mode,
            fixes: Fixes::ALL,
            ..ZoneConfig::default()
        })
        .unwrap();
        let threads = 512;
        let cached = std::sync::Barrier::new(threads + 1);
        let done = std::sync::Barrier::new(threads + 1);
        std::thread::scope(|s| -> Result<(), String> {
            for t in 0..threads {
                let (zone, cached, done) = (&zone, &cached, &done);
                s.spawn(move || {
                    set_thread_cpu(Some(t));
                    // Take a few pages and give them back: they stay cached.
                    let p: Vec<Pfn> = (0..8)
                        .map(|_| zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
                        .collect();
                    for pfn in p {
                        zone.free_pfn(pfn, Order(0)).unwrap();
                    }
                    cached.wait();
                    done.wait();
                });
            }
            cached.wait();
            // Checked after the others are released, so a failure cannot leave them waiting.
            let outcome = allocate_everything(&zone, mode);
            done.wait();
            outcome
        })
        .unwrap_or_else(|e| panic!("{e}"));
        zone.drain_all_pages();
        let r = zone.audit();
        r.assert_ok();
        assert_eq!(r.true_free_pages, zone.geometry().nr_pages, "{mode:?}");
    }
}

/// The main thread's part of the stranding test: check the caches, take every page of the
/// zone, check the next allocation fails, free them all.
fn allocate_everything(zone: &Zone, mode: PcpMode) -> Result<(), String> {
    let on_pcps = zone.audit().pcp_pages;
    if on_pcps == 0 {
        return Err(format!("{mode:?}: no page on any pcp"));
    }
    if let PcpMode::PerCpu(n) = mode {
        if on_pcps > u64::from(n * zone.geometry().pcp_high) {
            return Err(format!("{mode:?}: {on_pcps} pages on {n} pcps"));
        }
    }
    let n = zone.geometry().nr_pages;
    let mut got = Vec::with_capacity(n as usize);
    for i in 0..n {
        match zone.alloc_pfn(Order(0), Migratetype::Movable) {
            Ok(p) => got.push(p),
            Err(e) => return Err(format!("{mode:?}: allocation {i} of {n} failed: {e}")),
        }
    }
    let extra = zone.alloc_pfn(Order(0), Migratetype::Movable);
    for p in got {
        zone.free_pfn(p, Order(0)).map_err(|e| e.to_string())?;
    }
    match extra {
        Ok(p) => Err(format!("{mode:?}: allocated {p} past the zone's {n} pages")),
        Err(_) => Ok(()),
    }
}

/// `drain_all_pages` runs one at a time (`pcpu_drain_mutex`): an allocation that finds the
/// zone empty while another thread's drain is in progress waits for that drain and gets the
/// pages it frees. The zone is full except for 4 pages on one pcp (CPU 1's, or a live
/// thread's); thread D's `drain_all_pages` is parked inside that pcp's drain (before the zone
/// lock, the pages not yet freed); then this thread allocates. Had it not waited for D's
/// drain, it would find no free page and fail. D is let go when the allocation returns, or
/// after a second if it has not (it is then waiting for D, as it should): the bound only
/// ends the wait, the outcome does not depend on it.
#[test]
fn an_allocation_waits_for_the_drain_in_progress() {
    use std::sync::mpsc;
    use std::time::Duration;
    for mode in [PcpMode::PerCpu(2), PcpMode::PerThread] {
        set_thread_cpu(Some(0));
        // H frees pfns 0..4 hot, so pfn 0 ends at the tail of its pcp list: the pfn the
        // drain's PcpBulkBeforeZoneLock window names.
        let gate = Gate::new(RaceWindow::PcpBulkBeforeZoneLock, 0);
        let zone = Zone::new(ZoneConfig {
            pcp_mode: mode,
            race_hook: gate.hook(),
            pcp: Some(PcpConfig { high: 16, batch: 4 }),
            ..ZoneConfig::tiny(64)
        })
        .unwrap();
        // Every page, sorted: pfns 0..4 first.
        let mut held = fill(&zone, Order(0));
        let given: Vec<Pfn> = held.drain(..4).collect();
        let (freed_tx, freed_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let (returned_tx, returned_rx) = mpsc::channel::<()>();
        let got = std::thread::scope(|s| {
            // Owned here, so that a failing assertion below drops it and lets H go.
            let end_tx = end_tx;
            let zone = &zone;
            // H: frees 4 pages to its pcp (CPU 1's, or its own) and stays alive.
            s.spawn(move || {
                set_thread_cpu(Some(1));
                for p in given {
                    zone.free_pfn(p, Order(0)).unwrap();
                }
                freed_tx.send(()).unwrap();
                end_rx.recv().unwrap();
            });
            freed_rx.recv().unwrap();
            assert_eq!(zone.audit().pcp_pages, 4, "{mode:?}");
            // D: drains, parked in the middle.
            let d = s.spawn(|| zone.drain_all_pages());
            gate.wait_arrived();
            let gate = &gate;
            s.spawn(move || {
                let _ = returned_rx.recv_timeout(Duration::from_secs(1));
                gate.release();
            });
            let got = zone.alloc_pfn(Order(0), Migratetype::Movable);
            // The releaser is gone if it timed out.
            let _ = returned_tx.send(());
            d.join().unwrap();
            end_tx.send(()).unwrap();
            got
        });
        let got = got.unwrap_or_else(|e| panic!("{mode:?}: the allocation did not wait: {e}"));
        held.push(got);
        for p in held {
            zone.free_pfn(p, Order(0)).unwrap();
        }
        zone.drain_all_pages();
        let r = zone.audit();
        r.assert_ok();
        assert_eq!(r.true_free_pages, zone.geometry().nr_pages, "{mode:?}");
        set_thread_cpu(None);
    }
}

/// Pin the calling thread to host CPU 0 (so that `sched_getcpu() % n` is 0). `false` if the
/// host refuses.
fn pin_to_host_cpu0() -> bool {
    // SAFETY: `set` is a plain bitmask owned by this frame, passed by pointer with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            && libc::sched_getcpu() == 0
    }
}

/// An unbound thread whose CPU's section is held (here by a drain parked inside it; in a run,
/// by a thread the OS preempted there, which a kernel section never is) uses a free CPU's
/// section instead of waiting: the allocation returns while the drain is still parked. A
/// thread bound to that CPU would wait (`an_allocation_waits_for_the_drain_in_progress`).
/// The parked drain is let go when the allocation returns, or after 10 s if it has not (the
/// test then fails): the bound only ends the wait.
#[test]
fn an_unbound_thread_takes_a_free_cpu_when_its_own_is_held() {
    use std::sync::mpsc;
    use std::time::Duration;
    let gate = Gate::new(RaceWindow::PcpBulkBeforeZoneLock, 0);
    let zone = Zone::new(ZoneConfig {
        pcp_mode: PcpMode::PerCpu(2),
        race_hook: gate.hook(),
        pcp: Some(PcpConfig { high: 16, batch: 4 }),
        ..ZoneConfig::tiny(64)
    })
    .unwrap();
    let mut held = fill(&zone, Order(0));
    let given: Vec<Pfn> = held.drain(..4).collect();
    // Pages 4..8 free on the buddy lists, for U's CPU 1 refill.
    for p in held.drain(..4) {
        zone.free_pfn(p, Order(0)).unwrap();
    }
    zone.drain_all_pages();
    // Pages 0..4 on CPU 0's pcp (pfn 0 at the tail, the page the drain's window names).
    on_cpu(0, || {
        for p in given {
            zone.free_pfn(p, Order(0)).unwrap();
        }
    });
    let (returned_tx, returned_rx) = mpsc::channel();
    let returned = std::thread::scope(|s| {
        let zone = &zone;
        // D: drains CPU 0, parked inside its section.
        let d = s.spawn(|| zone.drain_all_pages());
        gate.wait_arrived();
        // U: unbound, on host CPU 0, so on modelled CPU 0, whose section D holds.
        let u = s.spawn(move || {
            if !pin_to_host_cpu0() {
                returned_tx.send(None).unwrap();
                return;
            }
            let p = zone.alloc_pfn(Order(0), Migratetype::Movable);
            returned_tx.send(Some(p)).unwrap();
        });
        let returned = returned_rx.recv_timeout(Duration::from_secs(10));
        gate.release();
        d.join().unwrap();
        u.join().unwrap();
        returned
    });
    match returned {
        Ok(None) => eprintln!("skipped: cannot pin a thread to host CPU 0 here"),
        Ok(Some(p)) => held.push(p.expect("an allocation from CPU 1's section or the zone")),
        Err(_) => panic!("the unbound thread waited for the section the parked drain holds"),
    }
    for p in held {
        zone.free_pfn(p, Order(0)).unwrap();
    }
    zone.drain_all_pages();
    let r = zone.audit();
    r.assert_ok();
    assert_eq!(r.true_free_pages, zone.geometry().nr_pages);
}

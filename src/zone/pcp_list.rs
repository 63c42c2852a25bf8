//! One pcp list (`pcp->lists[migratetype]`): a double-ended ring of `(pfn, cached type)`
//! entries whose front is the list head (the hot end).
//!
//! The kernel's pcp list is a `list_head` through `struct page`; here it is a ring buffer
//! because that is what the order-0 fast path can afford: a pop or push at the front is a load,
//! a masked index and two stores, with no wrap-around compare (the capacity is a power of two
//! and the indices run freely), where `VecDeque` pays a compare and a conditional move on every
//! operation. Its capacity is fixed when the pcp is made (see `PcpLists::new`): the order-0
//! fast path pushes only below `high`, where the ring has room by construction, with no
//! capacity check in release builds; every other push checks [`PcpList::is_full`] first.
//! Indices are masked, so even a broken bound could only overwrite an entry (caught by debug
//! builds and by `audit`'s count check), never reach outside the ring.

use crate::types::Migratetype;

/// A page on a pcp list: its pfn and the migratetype cached with it (3.17's `page->index`,
/// what race R2 is about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcpEntry {
    pub(crate) pfn: u32,
    pub(crate) mt: Migratetype,
}

/// A double-ended ring of [`PcpEntry`] (see the module docs).
///
/// Invariants: `buf.len()` is a power of two; the entries are at the indices
/// `head, head + 1, …, tail − 1` (wrapping `u32` arithmetic), each taken modulo `buf.len()`;
/// `tail − head ≤ buf.len()` (the caller's bound, checked in debug builds).
#[derive(Debug)]
pub(crate) struct PcpList {
    buf: Box<[PcpEntry]>,
    /// `buf.len() - 1`.
    mask: u32,
    head: u32,
    tail: u32,
}

impl PcpList {
    /// An empty list with room for at least `cap` entries (the most it may ever hold): 8
    /// bytes per entry, rounded up to a power of two (2 KiB at the usual `high + batch`).
    pub(crate) fn with_capacity(cap: usize) -> Self {
        let len = cap.max(1).next_power_of_two();
        assert!(len <= 1 << 31, "a pcp list of {cap} entries");
        let empty = PcpEntry {
            pfn: 0,
            mt: Migratetype::Unmovable,
        };
        PcpList {
            mask: len as u32 - 1,
            buf: vec![empty; len].into_boxed_slice(),
            head: 0,
            tail: 0,
        }
    }

    /// The slot of the free-running index `i`: `i mod len` (`buf.len()` is a power of two).
    #[inline(always)]
    fn slot(&self, i: u32) -> usize {
        (i & self.mask) as usize
    }

    /// The entry at the free-running index `i`.
    #[inline(always)]
    fn at(&mut self, i: u32) -> &mut PcpEntry {
        let s = self.slot(i);
        // SAFETY: `slot` masks with `mask`, which is `buf.len() - 1` (set with `buf` and never
        // changed), so `s < buf.len()`.
        unsafe { self.buf.get_unchecked_mut(s) }
    }

    /// Room for one more entry (the bound the owner of the list keeps).
    #[inline(always)]
    fn debug_check_room(&self) {
        debug_assert!(
            self.len() < self.buf.len(),
            "pcp list full: {} entries, more than high + batch",
            self.len()
        );
    }

    /// Number of entries.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    /// Whether the list has no room for another entry.
    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.buf.len()
    }

    /// Whether the list is empty.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Add `e` at the head (a hot page).
    #[inline(always)]
    pub(crate) fn push_front(&mut self, e: PcpEntry) {
        self.debug_check_room();
        self.head = self.head.wrapping_sub(1);
        *self.at(self.head) = e;
    }

    /// Add `e` at the tail (a cold page, or a refill in `rmqueue_bulk`'s order).
    #[inline(always)]
    pub(crate) fn push_back(&mut self, e: PcpEntry) {
        self.debug_check_room();
        *self.at(self.tail) = e;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Take the head entry.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<PcpEntry> {
        if self.is_empty() {
            return None;
        }
        let e = *self.at(self.head);
        self.head = self.head.wrapping_add(1);
        Some(e)
    }

    /// Take the tail entry (what `free_pcppages_bulk` frees first).
    #[inline]
    pub(crate) fn pop_back(&mut self) -> Option<PcpEntry> {
        if self.is_empty() {
            return None;
        }
        self.tail = self.tail.wrapping_sub(1);
        Some(*self.at(self.tail))
    }

    /// The entry `i` places from the head.
    pub(crate) fn get(&self, i: usize) -> Option<PcpEntry> {
        (i < self.len()).then(|| self.buf[self.slot(self.head.wrapping_add(i as u32))])
    }

    /// The tail entry.
    pub(crate) fn back(&self) -> Option<PcpEntry> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The entries from head to tail.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PcpEntry> + '_ {
        (0..self.len()).map(|i| self.buf[self.slot(self.head.wrapping_add(i as u32))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn e(pfn: u32) -> PcpEntry {
        PcpEntry {
            pfn,
            mt: Migratetype::Movable,
        }
    }

    /// Every operation agrees with `VecDeque` up to the capacity and through index
    /// wrap-around.
    #[test]
    fn behaves_as_a_deque() {
        let mut l = PcpList::with_capacity(48);
        let mut d = VecDeque::new();
        let mut x = 0x9e37_79b9u32;
        // Start the free-running indices near the wrap so it is crossed.
        l.head = u32::MAX - 5;
        l.tail = l.head;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let full = d.len() == 64;
            match x % 5 {
                0 | 1 if full => assert_eq!(l.pop_back(), d.pop_back()),
                0 => {
                    l.push_front(e(i));
                    d.push_front(e(i));
                }
                1 => {
                    l.push_back(e(i));
                    d.push_back(e(i));
                }
                2 => assert_eq!(l.pop_front(), d.pop_front()),
                3 => assert_eq!(l.pop_back(), d.pop_back()),
                _ => {
                    assert_eq!(l.back(), d.back().copied());
                    assert_eq!(l.get(1), d.get(1).copied());
                }
            }
            assert_eq!(l.len(), d.len());
            assert_eq!(l.is_empty(), d.is_empty());
        }
        assert!(l.iter().eq(d.iter().copied()));
        assert_eq!(l.buf.len(), 64);
    }

    /// A push past the capacity is caught in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pcp list full")]
    fn overfilling_is_caught() {
        let mut l = PcpList::with_capacity(2);
        for i in 0..3 {
            l.push_front(e(i));
        }
    }
}

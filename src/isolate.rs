//! Pageblock isolation (`mm/page_isolation.c`): `set_migratetype_isolate`,
//! `unset_migratetype_isolate`, `start_isolate_page_range`, `undo_isolate_page_range`,
//! `test_pages_isolated`, and memory offline.
//!
//! Not built yet: this is the isolation issue's module. The zone already keeps
//! `nr_isolate_pageblock`, the pageblock type is written under the zone lock and read without
//! it on the free paths, and [`ZoneFree::move_freepages_block`](crate::zone::ZoneFree) exists,
//! so isolation plugs into the existing paths without changing them.

//! CMA (`mm/cma.c`): areas reserved at zone creation, `cma_alloc` / `cma_release` over
//! `alloc_contig_range`.
//!
//! Not built yet: this is the CMA issue's module. The CMA area is already reserved by the
//! zone ([`ZoneConfig::cma_size`](crate::ZoneConfig::cma_size): pageblocks typed `CMA` at the top of
//! the zone, freed to the `CMA` lists), and movable allocations already use it through 3.17's
//! fallback or the seed's aggressive interleave ([`CmaPolicy`](crate::CmaPolicy)).

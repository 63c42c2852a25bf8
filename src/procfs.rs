//! /proc renderers (in progress).

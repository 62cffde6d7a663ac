//! `pve remove` (see below).

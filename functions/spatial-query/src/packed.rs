//! The packed Hilbert R-tree tiles and manifests carry (`geo-index`, the
//! flatbush layout): built once when written, searched in place when read.
//!
//! `geo-index` follows the offsets in the buffer without bounds checks, so
//! a buffer from the store is checked here before anything searches it.

use geo_index::indices::Indices;
use geo_index::rtree::sort::HilbertSort;
use geo_index::rtree::{RTreeBuilder, RTreeIndex, RTreeMetadata, RTreeRef};

use crate::geodesy::LonLatBox;

/// Children per node.
const NODE_SIZE: u16 = 16;

/// The R-tree of `boxes` (`[west, south, east, north]` each), as bytes.
pub(crate) fn build(boxes: impl ExactSizeIterator<Item = LonLatBox>) -> Vec<u8> {
    let mut builder = RTreeBuilder::<f64>::new_with_node_size(boxes.len() as u32, NODE_SIZE);
    for b in boxes {
        builder.add(b[0], b[1], b[2], b[3]);
    }
    builder.finish::<HilbertSort>().into_inner()
}

/// Whether `data` is an R-tree of `count` items whose every offset stays
/// inside it.
pub(crate) fn check(data: &[u8], count: usize) -> bool {
    let Ok(meta) = RTreeMetadata::<f64>::from_slice(data) else {
        return false;
    };
    if meta.num_items() as usize != count || meta.node_size() != NODE_SIZE {
        return false;
    }
    let indices = meta.indices_slice(data);
    let boxes = meta.num_nodes() * 4;
    let get = |i: usize| match &indices {
        Indices::U16(s) => s.get(i).map(|&v| v as usize),
        Indices::U32(s) => s.get(i).map(|&v| v as usize),
    };
    (0..meta.num_nodes()).all(|j| match get(j) {
        Some(v) if j < count => v < count,
        Some(v) => v % 4 == 0 && v + 4 <= boxes && v < 4 * j,
        None => false,
    })
}

/// The items whose boxes intersect `b` (boundaries included); `data` must
/// have passed [`check`].
pub(crate) fn search(data: &[u8], b: &LonLatBox) -> Vec<u32> {
    match RTreeRef::<f64>::try_new(&data) {
        Ok(tree) if tree.num_items() > 0 => tree.search(b[0], b[1], b[2], b[3]),
        _ => Vec::new(),
    }
}

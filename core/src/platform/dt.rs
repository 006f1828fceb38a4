//! Device-tree access on top of the `fdt` crate: blob validation, cell-sized reads, `reg`
//! decoding with `ranges` translation, and interrupt specifiers.
//!
//! Spec: Devicetree Specification v0.4, chapter 2.3 (`#address-cells`, `#size-cells`, `reg`,
//! `ranges`), 2.4 (interrupts) and 5 (the flattened format: header, memory reservation block,
//! structure block tokens).
//!
//! Invariant: [`validate`] walks the whole structure block before any other function sees the
//! blob, so the `fdt` crate (which unwraps freely inside) only ever reads a well-formed tree. A
//! corrupt or truncated blob is an [`DtError`], never a panic.

use core::fmt;

use fdt::Fdt;
use fdt::node::FdtNode;

use crate::mm::MemRange;

/// Size of the flattened device-tree header (version 17).
pub const HEADER_SIZE: usize = 40;
/// Largest blob accepted; real ones are a few KiB to a few hundred KiB.
pub const MAX_DTB_SIZE: usize = 4 << 20;
/// Deepest node nesting accepted (real trees nest 5 or 6 deep).
pub const MAX_DEPTH: usize = 16;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Why a device-tree blob was refused or could not be interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The boot loader passed no DTB (x0 was 0).
    NoDtb,
    /// The first word is not the FDT magic 0xd00dfeed.
    BadMagic(u32),
    /// `totalsize` is smaller than the header or larger than [`MAX_DTB_SIZE`].
    BadSize(u32),
    /// The blob's format version is older than 16 or its last compatible version newer than 17.
    BadVersion(u32),
    /// A block offset or size in the header points outside the blob.
    BadHeader,
    /// The structure block is malformed at this byte offset into it.
    BadStructure(usize),
    /// A node or property that exitless needs is absent or malformed.
    Missing(&'static str),
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::NoDtb => write!(f, "no device tree was passed in x0"),
            DtError::BadMagic(m) => write!(f, "bad magic {m:#010x} (expected 0xd00dfeed)"),
            DtError::BadSize(s) => write!(f, "implausible totalsize {s:#x}"),
            DtError::BadVersion(v) => write!(f, "unsupported format version {v}"),
            DtError::BadHeader => write!(f, "header offsets point outside the blob"),
            DtError::BadStructure(o) => write!(f, "malformed structure block at offset {o:#x}"),
            DtError::Missing(what) => write!(f, "missing or malformed {what}"),
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let w = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// Checks the 40-byte header and returns the blob's `totalsize`, so the shell knows how many
/// bytes to expose before [`validate`] looks at the rest.
pub fn total_size(header: &[u8]) -> Result<usize, DtError> {
    let magic = be32(header, 0).ok_or(DtError::BadSize(0))?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic(magic));
    }
    let size = be32(header, 4).ok_or(DtError::BadSize(0))?;
    if (size as usize) < HEADER_SIZE || size as usize > MAX_DTB_SIZE {
        return Err(DtError::BadSize(size));
    }
    Ok(size as usize)
}

/// Validates a whole blob (header, memory reservation block, structure block with its string
/// references) and returns the parsed tree.
pub fn validate(blob: &[u8]) -> Result<Fdt<'_>, DtError> {
    let size = total_size(blob)?;
    if blob.len() < size {
        return Err(DtError::BadSize(size as u32));
    }
    let blob = &blob[..size];
    let field = |i: usize| be32(blob, 4 * i).ok_or(DtError::BadHeader);
    let (off_struct, off_strings, off_rsvmap) = (field(2)?, field(3)?, field(4)?);
    let (version, last_comp) = (field(5)?, field(6)?);
    let (size_strings, size_struct) = (field(8)?, field(9)?);
    if version < 16 || last_comp > 17 {
        return Err(DtError::BadVersion(version));
    }
    let within = |off: u32, len: u32| (off as u64) + (len as u64) <= size as u64;
    if !within(off_struct, size_struct)
        || !within(off_strings, size_strings)
        || !(off_rsvmap as usize).is_multiple_of(8)
        || !off_struct.is_multiple_of(4)
        || (off_rsvmap as usize) < HEADER_SIZE
    {
        return Err(DtError::BadHeader);
    }
    // Memory reservation block: (address, size) u64 pairs ending with a (0, 0) pair.
    let mut off = off_rsvmap as usize;
    loop {
        let (Some(a), Some(b)) = (be32(blob, off + 8), be32(blob, off + 12)) else {
            return Err(DtError::BadHeader);
        };
        let (c, d) = (
            be32(blob, off).unwrap_or(0),
            be32(blob, off + 4).unwrap_or(0),
        );
        off += 16;
        if a == 0 && b == 0 && c == 0 && d == 0 {
            break;
        }
    }
    let structs = &blob[off_struct as usize..(off_struct + size_struct) as usize];
    let strings = &blob[off_strings as usize..(off_strings + size_strings) as usize];
    check_structure(structs, strings)?;
    Fdt::new(blob).map_err(|_| DtError::BadHeader)
}

/// Validates a blob the caller may modify, removes its FDT_NOP tokens, and returns the tree.
///
/// QEMU and U-Boot delete nodes and properties by overwriting them with FDT_NOP (libfdt's
/// `fdt_nop_node`), which is valid FDT, but the `fdt` crate only tolerates NOPs in some places
/// (a NOP between a node's properties and its first child makes it panic). Compacting the
/// structure block first gives it a tree it reads safely. The blob's `size_dt_struct` shrinks;
/// the other blocks stay where they are.
pub fn validate_and_normalize(blob: &mut [u8]) -> Result<Fdt<'_>, DtError> {
    validate(blob)?;
    strip_nops(blob)?;
    validate(blob)
}

fn strip_nops(blob: &mut [u8]) -> Result<(), DtError> {
    let off_struct = be32(blob, 8).ok_or(DtError::BadHeader)? as usize;
    let size_struct = be32(blob, 36).ok_or(DtError::BadHeader)? as usize;
    let s = &mut blob[off_struct..off_struct + size_struct];
    let (mut rd, mut wr) = (0usize, 0usize);
    while rd < s.len() {
        let bad = DtError::BadStructure(rd);
        let token = be32(s, rd).ok_or(bad)?;
        let len = match token {
            FDT_NOP => {
                rd += 4;
                continue;
            }
            FDT_BEGIN_NODE => {
                let name = s[rd + 4..].iter().position(|&c| c == 0).ok_or(bad)?;
                4 + (name + 1).next_multiple_of(4)
            }
            FDT_PROP => 12 + (be32(s, rd + 4).ok_or(bad)? as usize).next_multiple_of(4),
            FDT_END_NODE | FDT_END => 4,
            _ => return Err(bad),
        };
        let len = len.min(s.len() - rd);
        s.copy_within(rd..rd + len, wr);
        rd += len;
        wr += len;
        if token == FDT_END {
            break;
        }
    }
    s[wr..].fill(0);
    blob[36..40].copy_from_slice(&(wr as u32).to_be_bytes());
    Ok(())
}

/// Walks the structure-block tokens: names NUL-terminated inside the block, property values and
/// name offsets in bounds, nodes properly nested, a node's properties before its child nodes
/// (DTSpec 5.4.1: the `fdt` crate asserts on a property after a child), exactly one root,
/// ending with FDT_END.
fn check_structure(s: &[u8], strings: &[u8]) -> Result<(), DtError> {
    let mut off = 0usize;
    let mut depth = 0usize;
    let mut roots = 0usize;
    // Bit d: the open node at depth d (1-based) already has a child node.
    let mut has_child = 0u32;
    loop {
        let bad = DtError::BadStructure(off);
        let token = be32(s, off).ok_or(bad)?;
        off += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name_len = s.get(off..).and_then(|r| r.iter().position(|&c| c == 0));
                let name_len = name_len.ok_or(bad)?;
                core::str::from_utf8(&s[off..off + name_len]).map_err(|_| bad)?;
                off = (off + name_len + 1).next_multiple_of(4);
                if depth == 0 {
                    roots += 1;
                }
                has_child |= 1 << depth;
                depth += 1;
                if depth > MAX_DEPTH || roots > 1 {
                    return Err(bad);
                }
                has_child &= !(1 << depth);
            }
            FDT_END_NODE => depth = depth.checked_sub(1).ok_or(bad)?,
            FDT_PROP => {
                if depth == 0 || has_child & (1 << depth) != 0 {
                    return Err(bad);
                }
                let len = be32(s, off).ok_or(bad)? as usize;
                let name_off = be32(s, off + 4).ok_or(bad)? as usize;
                let name = strings.get(name_off..).ok_or(bad)?;
                let name_len = name.iter().position(|&c| c == 0).ok_or(bad)?;
                core::str::from_utf8(&name[..name_len]).map_err(|_| bad)?;
                off += 8;
                if off.checked_add(len).is_none_or(|e| e > s.len()) {
                    return Err(bad);
                }
                off = (off + len).next_multiple_of(4);
            }
            FDT_NOP => {}
            FDT_END => {
                return if depth == 0 && roots == 1 {
                    Ok(())
                } else {
                    Err(bad)
                };
            }
            _ => return Err(bad),
        }
    }
}

/// Reads a big-endian number of `cells` 32-bit cells (0 to 2) from the front of `bytes`.
pub fn read_cells(bytes: &[u8], cells: usize) -> Option<(u64, &[u8])> {
    if cells > 2 || bytes.len() < cells * 4 {
        return None;
    }
    let mut v = 0u64;
    for i in 0..cells {
        v = (v << 32) | be32(bytes, i * 4)? as u64;
    }
    Some((v, &bytes[cells * 4..]))
}

/// A property's value as one 32-bit cell.
pub fn prop_u32(node: &FdtNode<'_, '_>, name: &str) -> Option<u32> {
    let p = node.property(name)?;
    if p.value.len() != 4 {
        return None;
    }
    be32(p.value, 0)
}

/// A property's value as a number of 1 or 2 cells (e.g. `cpu-release-addr`, `linux,initrd-*`).
pub fn prop_u64(node: &FdtNode<'_, '_>, name: &str) -> Option<u64> {
    let p = node.property(name)?;
    match p.value.len() {
        4 => read_cells(p.value, 1).map(|(v, _)| v),
        8 => read_cells(p.value, 2).map(|(v, _)| v),
        _ => None,
    }
}

/// A property's value as a string (up to its first NUL).
pub fn prop_str<'a>(node: &FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    let v = node.property(name)?.value;
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    core::str::from_utf8(&v[..end]).ok()
}

/// True if the node's `compatible` list holds one of `with`.
pub fn is_compatible(node: &FdtNode<'_, '_>, with: &[&str]) -> bool {
    let Some(p) = node.property("compatible") else {
        return false;
    };
    p.value
        .split(|&c| c == 0)
        .filter_map(|s| core::str::from_utf8(s).ok())
        .any(|s| with.contains(&s))
}

/// True unless the node says `status = "disabled"` (or anything but "okay"/"ok").
pub fn is_enabled(node: &FdtNode<'_, '_>) -> bool {
    matches!(prop_str(node, "status"), None | Some("okay") | Some("ok"))
}

/// What a node's ancestors say about addressing: the cell sizes its `reg` uses and the chain of
/// `ranges` that maps its bus addresses to CPU physical addresses.
#[derive(Clone, Copy)]
pub struct Bus<'a> {
    /// `#address-cells` and `#size-cells` of each ancestor, root first, and its `ranges`
    /// (`None` means "no ranges property": not translatable beyond it).
    frames: [(usize, usize, Option<&'a [u8]>); MAX_DEPTH],
    depth: usize,
}

impl<'a> Bus<'a> {
    /// The bus context of the root node's children.
    pub fn root(root: &FdtNode<'_, 'a>) -> Self {
        let mut b = Bus {
            frames: [(2, 1, Some(&[][..])); MAX_DEPTH],
            depth: 0,
        };
        b.frames[0] = cells_of(root, Some(&[]));
        b.depth = 1;
        b
    }

    /// The bus context of `node`'s children, `node` being a child of this bus.
    pub fn child(&self, node: &FdtNode<'_, 'a>) -> Option<Self> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        let mut b = *self;
        b.frames[b.depth] = cells_of(node, node.property("ranges").map(|p| p.value));
        b.depth += 1;
        Some(b)
    }

    /// `#address-cells` and `#size-cells` that a child of this bus uses in `reg`.
    pub fn cells(&self) -> (usize, usize) {
        let (a, s, _) = self.frames[self.depth - 1];
        (a, s)
    }

    /// Translates a bus address of this bus's children into a CPU physical address through
    /// every ancestor's `ranges` (empty `ranges` is the identity).
    pub fn translate(&self, mut addr: u64, size: u64) -> Option<u64> {
        for level in (1..self.depth).rev() {
            let (child_ac, child_sc, ranges) = self.frames[level];
            let (parent_ac, _, _) = self.frames[level - 1];
            let mut r = ranges?;
            if r.is_empty() {
                continue;
            }
            let mut hit = None;
            while !r.is_empty() {
                let (c, rest) = read_cells(r, child_ac)?;
                let (p, rest) = read_cells(rest, parent_ac)?;
                let (len, rest) = read_cells(rest, child_sc)?;
                r = rest;
                if addr >= c && addr.checked_add(size)? <= c.checked_add(len)? {
                    hit = Some(p + (addr - c));
                    break;
                }
            }
            addr = hit?;
        }
        Some(addr)
    }

    /// The node's `reg` entries as CPU physical ranges (entries that cannot be translated are
    /// dropped). Returns at most `N` entries.
    pub fn reg<const N: usize>(&self, node: &FdtNode<'_, '_>) -> heapless::Vec<MemRange, N> {
        let mut out = heapless::Vec::new();
        let (ac, sc) = self.cells();
        let Some(p) = node.property("reg") else {
            return out;
        };
        let mut r = p.value;
        while !r.is_empty() {
            let Some((addr, rest)) = read_cells(r, ac) else {
                break;
            };
            let Some((size, rest)) = read_cells(rest, sc) else {
                break;
            };
            r = rest;
            if let Some(pa) = self.translate(addr, size)
                && let Some(range) = MemRange::with_size(pa, size)
                && out.push(range).is_err()
            {
                break;
            }
        }
        out
    }
}

fn cells_of<'a>(
    node: &FdtNode<'_, 'a>,
    ranges: Option<&'a [u8]>,
) -> (usize, usize, Option<&'a [u8]>) {
    let ac = prop_u32(node, "#address-cells").unwrap_or(2) as usize;
    let sc = prop_u32(node, "#size-cells").unwrap_or(1) as usize;
    (ac, sc, ranges)
}

/// Visits every node of the tree depth-first with its bus context and path, until `visit`
/// returns `true` (found). Depth is bounded by [`MAX_DEPTH`].
pub fn walk<'a>(
    fdt: &'a Fdt<'a>,
    visit: &mut dyn FnMut(&FdtNode<'a, 'a>, &Bus<'a>, &str) -> bool,
) -> bool {
    let Some(root) = fdt.find_node("/") else {
        return false;
    };
    let bus = Bus::root(&root);
    let mut path = heapless::String::<256>::new();
    walk_children(&root, &bus, &mut path, visit)
}

fn walk_children<'a>(
    node: &FdtNode<'a, 'a>,
    bus: &Bus<'a>,
    path: &mut heapless::String<256>,
    visit: &mut dyn FnMut(&FdtNode<'a, 'a>, &Bus<'a>, &str) -> bool,
) -> bool {
    for child in node.children() {
        let len = path.len();
        if path.push('/').is_err() || path.push_str(child.name).is_err() {
            path.truncate(len);
            continue;
        }
        if visit(&child, bus, path) {
            return true;
        }
        if let Some(inner) = bus.child(&child)
            && walk_children(&child, &inner, path, visit)
        {
            return true;
        }
        path.truncate(len);
    }
    false
}

/// The bus context and node at `path` (an absolute path), for reading its `reg`.
pub fn find_path<'a>(fdt: &'a Fdt<'a>, path: &str) -> Option<(FdtNode<'a, 'a>, Bus<'a>)> {
    let mut found = None;
    walk(fdt, &mut |node, bus, p| {
        if node_path_matches(p, path) {
            found = Some((*node, *bus));
            true
        } else {
            false
        }
    });
    found
}

/// Compares a full node path with a wanted path whose components may omit the unit address
/// (`/soc/serial` matches `/soc/serial@7e201000`), as the Devicetree spec allows.
fn node_path_matches(full: &str, wanted: &str) -> bool {
    let mut a = full.split('/').filter(|s| !s.is_empty());
    let mut b = wanted.split('/').filter(|s| !s.is_empty());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x != y && x.split('@').next() != Some(y) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// An interrupt as the GIC sees it, decoded from a 3-cell GIC specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    /// The GIC interrupt ID (16-31 for PPIs, 32+ for SPIs).
    pub intid: u32,
    /// True for level-sensitive, false for edge-triggered.
    pub level: bool,
}

/// Decodes the `interrupts` property of a node whose parent is a GIC (`#interrupt-cells = 3`:
/// type 0 = SPI, 1 = PPI; number; flags whose low nibble is the trigger, 1/2 = edge, 4/8 = level).
pub fn gic_interrupts<const N: usize>(node: &FdtNode<'_, '_>) -> heapless::Vec<Interrupt, N> {
    let mut out = heapless::Vec::new();
    let Some(p) = node.property("interrupts") else {
        return out;
    };
    for spec in p.value.chunks_exact(12) {
        let (Some(kind), Some(num), Some(flags)) = (be32(spec, 0), be32(spec, 4), be32(spec, 8))
        else {
            break;
        };
        let intid = match kind {
            0 => 32 + num,
            1 => 16 + num,
            _ => continue,
        };
        if out
            .push(Interrupt {
                intid,
                level: flags & 0xc != 0,
            })
            .is_err()
        {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_size_rejects_bad_magic() {
        let mut h = [0u8; HEADER_SIZE];
        h[0..4].copy_from_slice(&0xdeadbeefu32.to_be_bytes());
        assert_eq!(total_size(&h), Err(DtError::BadMagic(0xdeadbeef)));
    }

    #[test]
    fn total_size_rejects_implausible_sizes() {
        let mut h = [0u8; HEADER_SIZE];
        h[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&8u32.to_be_bytes());
        assert_eq!(total_size(&h), Err(DtError::BadSize(8)));
        h[4..8].copy_from_slice(&(64u32 << 20).to_be_bytes());
        assert_eq!(total_size(&h), Err(DtError::BadSize(64 << 20)));
    }

    /// Builds a blob by hand: header, empty reservation map, the given structure tokens, and a
    /// strings block holding "reg\0".
    fn blob_with_structure(words: &[u32]) -> std::vec::Vec<u8> {
        let strings = b"reg\0";
        let off_rsv = HEADER_SIZE;
        let off_struct = off_rsv + 16;
        let off_strings = off_struct + words.len() * 4;
        let total = off_strings + strings.len();
        let mut b = std::vec::Vec::new();
        for w in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
        ]
        .into_iter()
        .chain([17, 16, 0, strings.len() as u32, (words.len() * 4) as u32])
        {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&[0; 16]);
        for w in words {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn nops_between_properties_and_children_are_removed() {
        // / { reg = <1>; NOP; child { }; NOP; };
        let words = [
            FDT_BEGIN_NODE,
            0,
            FDT_PROP,
            4,
            0,
            1,
            FDT_NOP,
            FDT_BEGIN_NODE,
            u32::from_be_bytes(*b"chil"),
            u32::from_be_bytes(*b"d\0\0\0"),
            FDT_END_NODE,
            FDT_NOP,
            FDT_END_NODE,
            FDT_END,
        ];
        let mut blob = blob_with_structure(&words);
        let fdt = validate_and_normalize(&mut blob).expect("valid");
        let root = fdt.find_node("/").unwrap();
        let children: std::vec::Vec<_> = root.children().map(|c| c.name).collect();
        assert_eq!(children, ["child"]);
        assert_eq!(prop_u32(&root, "reg"), Some(1));
        assert_eq!(be32(&blob, 36), Some(((words.len() - 2) * 4) as u32));
    }

    #[test]
    fn path_match_allows_omitted_unit_address() {
        assert!(node_path_matches(
            "/soc/serial@7e201000",
            "/soc/serial@7e201000"
        ));
        assert!(node_path_matches("/soc/serial@7e201000", "/soc/serial"));
        assert!(!node_path_matches("/soc/serial@7e201000", "/soc"));
        assert!(!node_path_matches("/soc", "/soc/serial"));
    }

    #[test]
    fn read_cells_handles_one_and_two_cells() {
        let b = [0, 0, 0, 1, 0, 0, 0, 2, 0xff];
        assert_eq!(read_cells(&b, 1).map(|x| x.0), Some(1));
        assert_eq!(read_cells(&b, 2).map(|x| x.0), Some(0x1_0000_0002));
        assert_eq!(read_cells(&b, 3), None);
        assert_eq!(read_cells(&b[..3], 1), None);
    }
}

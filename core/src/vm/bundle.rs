//! The bundle: the cpio archive that carries a VM configuration and the guest images to the
//! hypervisor. The boot loader loads it as the initrd (QEMU `-initrd`), so it reaches exitless
//! as `/chosen/linux,initrd-start..end`.
//!
//! Format: the portable ASCII cpio formats "newc" (magic `070701`) and "crc" (`070702`), as
//! written by `cpio -o -H newc` and `scripts/mkbundle.py` (spec: the cpio(5) manual page and the
//! kernel's Documentation/driver-api/early-userspace/buffer-format.rst). Each entry is a
//! 110-byte header (the magic and 13 fields of 8 hex digits), the name (`namesize` bytes with its
//! NUL) padded so that header plus name end on a multiple of 4, then `filesize` data bytes padded
//! to 4. The entry named `TRAILER!!!` ends the archive; anything after it is ignored. The "crc"
//! format adds the 32-bit sum of the data bytes in the `check` field, which is verified.
//!
//! Only regular files are kept: directories, symlinks, devices and the like are skipped. Names
//! are compared after stripping one leading `./` (what `find . | cpio` writes). Hard links are
//! not supported: newc stores the data only with the last link, the others read as empty files.
//! Compressed bundles are refused with a hint: the bundle must be the plain `.cpio`.
//!
//! Invariants of a parsed [`Bundle`]: every name is unique, non-empty UTF-8, and every file's
//! data lies inside the input (the bundle borrows it, nothing is copied).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Name of the configuration file inside a bundle.
pub const CONFIG_FILE: &str = "exitless.toml";

/// Size of a newc/crc header.
const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// File-type bits of `mode` (`S_IFMT`) and the regular-file type (`S_IFREG`).
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// Names of the 13 header fields after the magic, in order (for error messages).
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const F_MODE: usize = 1;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;
const F_CHECK: usize = 12;

/// A parsed bundle: the regular files of a cpio archive, borrowed from the archive bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// (name without a leading "./", contents), in archive order.
    files: Vec<(&'a str, &'a [u8])>,
}

/// Which part of an entry ran past the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The 110-byte header.
    Header,
    /// The file name.
    Name,
    /// The file data.
    Data,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Name => "file name",
            Part::Data => "file data",
        })
    }
}

/// Why a bundle cannot be read. Offsets are byte offsets from the start of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// The bundle has no byte at all.
    Empty,
    /// The bundle is gzip, xz, zstd, bzip2 or lz4 compressed (named).
    Compressed(&'static str),
    /// No `070701`/`070702` magic where an entry must start.
    BadMagic {
        /// Where the entry should start.
        offset: usize,
        /// True if the bytes are the old portable format (`070707`, `cpio -H odc`).
        odc: bool,
    },
    /// The input ends inside an entry.
    Truncated {
        /// Where the cut part starts.
        offset: usize,
        /// Which part is cut.
        part: Part,
    },
    /// A header field is not 8 hex digits.
    BadHex {
        /// Where the field starts.
        offset: usize,
        /// The field's cpio(5) name.
        field: &'static str,
    },
    /// A name is empty, not NUL-terminated or not UTF-8.
    BadName {
        /// Where the name starts.
        offset: usize,
    },
    /// A "crc" entry's data does not add up to its `check` field.
    BadChecksum {
        /// Where the entry starts.
        offset: usize,
        /// The file's name.
        name: String,
    },
    /// The archive ends without a `TRAILER!!!` entry.
    MissingTrailer {
        /// The end of the last entry.
        offset: usize,
    },
    /// Two regular files have the same name.
    DuplicateName {
        /// Where the second entry starts.
        offset: usize,
        /// The name.
        name: String,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FIX: &str = "rebuild it with scripts/mkbundle.py or `cpio -o -H newc`";
        match self {
            BundleError::Empty => write!(
                f,
                "the bundle is empty: pass a cpio archive holding {CONFIG_FILE} as the initrd \
                 (QEMU -initrd)"
            ),
            BundleError::Compressed(what) => write!(
                f,
                "the bundle is {what}-compressed: pass the uncompressed cpio archive (exitless \
                 does not decompress)"
            ),
            BundleError::BadMagic { offset, odc: true } => write!(
                f,
                "bundle byte {offset:#x}: old portable cpio format (070707) where a newc entry \
                 should start: {FIX}"
            ),
            BundleError::BadMagic { offset, odc: false } => write!(
                f,
                "bundle byte {offset:#x}: no cpio newc magic (070701 or 070702) where an entry \
                 should start: the bundle is not a newc archive or is corrupt; {FIX}"
            ),
            BundleError::Truncated { offset, part } => write!(
                f,
                "bundle byte {offset:#x}: the archive ends inside an entry's {part}: the bundle \
                 was cut short (check the initrd size the boot loader passed) or is corrupt"
            ),
            BundleError::BadHex { offset, field } => write!(
                f,
                "bundle byte {offset:#x}: cpio header field '{field}' is not 8 hex digits: the \
                 bundle is corrupt; {FIX}"
            ),
            BundleError::BadName { offset } => write!(
                f,
                "bundle byte {offset:#x}: an entry name is empty, not NUL-terminated or not \
                 UTF-8: {FIX}"
            ),
            BundleError::BadChecksum { offset, name } => write!(
                f,
                "bundle byte {offset:#x}: the data of '{name}' does not match its cpio crc \
                 checksum: the bundle is corrupt; {FIX}"
            ),
            BundleError::MissingTrailer { offset } => write!(
                f,
                "bundle byte {offset:#x}: the archive ends without its TRAILER!!! entry: the \
                 bundle was cut short or is several archives glued together; {FIX}"
            ),
            BundleError::DuplicateName { offset, name } => write!(
                f,
                "bundle byte {offset:#x}: a second file named '{name}': every name must be \
                 unique; rebuild the bundle without the duplicate"
            ),
        }
    }
}

impl<'a> Bundle<'a> {
    /// Reads the archive in `bytes`, up to its `TRAILER!!!` entry.
    pub fn parse(bytes: &'a [u8]) -> Result<Bundle<'a>, BundleError> {
        if bytes.is_empty() {
            return Err(BundleError::Empty);
        }
        if let Some(what) = compression(bytes) {
            return Err(BundleError::Compressed(what));
        }
        let mut files: Vec<(&'a str, &'a [u8])> = Vec::new();
        let mut pos = 0;
        loop {
            if pos >= bytes.len() {
                return Err(BundleError::MissingTrailer { offset: pos });
            }
            let entry = pos;
            let magic = &bytes[pos..bytes.len().min(pos + 6)];
            let crc = match magic {
                b"070701" => false,
                b"070702" => true,
                m if m.len() == 6 || !b"07070".starts_with(m) => {
                    return Err(BundleError::BadMagic {
                        offset: pos,
                        odc: m == b"070707",
                    });
                }
                _ => false, // a cut magic: reported as a truncated header below
            };
            let header = bytes
                .get(pos..pos + HEADER_LEN)
                .ok_or(BundleError::Truncated {
                    offset: pos,
                    part: Part::Header,
                })?;
            let mut field = [0u32; 13];
            for (i, v) in field.iter_mut().enumerate() {
                let at = 6 + 8 * i;
                *v = parse_hex(&header[at..at + 8]).ok_or(BundleError::BadHex {
                    offset: pos + at,
                    field: FIELDS[i],
                })?;
            }
            pos += HEADER_LEN;

            let name_len = field[F_NAMESIZE] as usize;
            let raw =
                bytes
                    .get(pos..pos.saturating_add(name_len))
                    .ok_or(BundleError::Truncated {
                        offset: pos,
                        part: Part::Name,
                    })?;
            let name = match raw.split_last() {
                Some((0, name)) if !name.contains(&0) => {
                    core::str::from_utf8(name).map_err(|_| BundleError::BadName { offset: pos })?
                }
                _ => return Err(BundleError::BadName { offset: pos }),
            };
            pos = align4(pos + name_len);
            if name == TRAILER {
                break;
            }

            let data_len = field[F_FILESIZE] as usize;
            let data =
                bytes
                    .get(pos..pos.saturating_add(data_len))
                    .ok_or(BundleError::Truncated {
                        offset: pos.min(bytes.len()),
                        part: Part::Data,
                    })?;
            pos = align4(pos + data_len);

            if field[F_MODE] & S_IFMT != S_IFREG {
                continue;
            }
            let name = strip(name);
            if name.is_empty() {
                return Err(BundleError::BadName {
                    offset: entry + HEADER_LEN,
                });
            }
            if crc && checksum(data) != field[F_CHECK] {
                return Err(BundleError::BadChecksum {
                    offset: entry,
                    name: name.into(),
                });
            }
            if files.iter().any(|(n, _)| *n == name) {
                return Err(BundleError::DuplicateName {
                    offset: entry,
                    name: name.into(),
                });
            }
            files.push((name, data));
        }
        Ok(Bundle { files })
    }

    /// The regular files, as (name, contents), in archive order.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.files.iter().copied()
    }

    /// The contents of the file called `name` (a leading "./" is ignored on both sides).
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        let name = strip(name);
        self.files.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
    }

    /// The configuration file's text, if the bundle has one.
    pub fn config(&self) -> Option<&'a [u8]> {
        self.file(CONFIG_FILE)
    }
}

/// `name` without one leading "./".
fn strip(name: &str) -> &str {
    name.strip_prefix("./").unwrap_or(name)
}

/// Rounds `x` up to a multiple of 4 (cpio pads from the start of the archive).
fn align4(x: usize) -> usize {
    x.saturating_add(3) & !3
}

/// Parses 8 ASCII hex digits (either case).
fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, &c| Some(acc << 4 | (c as char).to_digit(16)?))
}

/// The "crc" format's checksum: the 32-bit wrapping sum of the data bytes.
fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

/// Names the compression format `bytes` starts with, if any.
fn compression(bytes: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 5] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"BZh", "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| bytes.starts_with(m))
        .map(|(_, what)| *what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    const DIR: u32 = 0o040755;
    const REG: u32 = 0o100644;
    const SYMLINK: u32 = 0o120777;

    /// A minimal newc ("070701") or crc ("070702") writer.
    struct Writer {
        out: Vec<u8>,
        crc: bool,
        ino: u32,
    }

    impl Writer {
        fn new() -> Self {
            Writer {
                out: Vec::new(),
                crc: false,
                ino: 1,
            }
        }

        fn crc() -> Self {
            Writer {
                crc: true,
                ..Self::new()
            }
        }

        fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
            let check = if self.crc { checksum(data) } else { 0 };
            let magic = if self.crc { "070702" } else { "070701" };
            let fields = [
                self.ino,
                mode,
                0,
                0,
                1,
                0,
                data.len() as u32,
                0,
                0,
                0,
                0,
                name.len() as u32 + 1,
                check,
            ];
            self.ino += 1;
            self.out.extend_from_slice(magic.as_bytes());
            for v in fields {
                self.out.extend_from_slice(format!("{v:08X}").as_bytes());
            }
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(0);
            self.pad();
            self.out.extend_from_slice(data);
            self.pad();
            self
        }

        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.entry(name, REG, data)
        }

        fn trailer(&mut self) -> Vec<u8> {
            self.entry(TRAILER, 0, &[]);
            self.out.clone()
        }

        fn pad(&mut self) {
            while !self.out.len().is_multiple_of(4) {
                self.out.push(0);
            }
        }
    }

    #[test]
    fn regular_files_are_returned_in_archive_order_with_their_contents() {
        let bytes = Writer::new()
            .file("exitless.toml", b"[[vm]]\n")
            .file("Image", &[1, 2, 3, 4, 5])
            .file("empty", b"")
            .trailer();
        let b = Bundle::parse(&bytes).unwrap();
        let files: Vec<_> = b.files().collect();
        assert_eq!(
            files,
            vec![
                ("exitless.toml", &b"[[vm]]\n"[..]),
                ("Image", &[1, 2, 3, 4, 5][..]),
                ("empty", &b""[..])
            ]
        );
        assert_eq!(b.config(), Some(&b"[[vm]]\n"[..]));
        assert_eq!(b.file("missing"), None);
    }

    #[test]
    fn file_data_is_borrowed_from_the_input() {
        let bytes = Writer::new().file("a", b"xyz").trailer();
        let b = Bundle::parse(&bytes).unwrap();
        let data = b.file("a").unwrap();
        assert!(bytes.as_ptr_range().contains(&data.as_ptr()));
    }

    #[test]
    fn leading_dot_slash_is_ignored_in_names() {
        let bytes = Writer::new()
            .entry(".", DIR, b"")
            .file("./Image", b"k")
            .trailer();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.file("Image"), Some(&b"k"[..]));
        assert_eq!(b.file("./Image"), Some(&b"k"[..]));
        assert_eq!(b.files().next().unwrap().0, "Image");
    }

    #[test]
    fn directories_symlinks_and_devices_are_skipped() {
        let bytes = Writer::new()
            .entry("dir", DIR, b"")
            .entry("link", SYMLINK, b"target")
            .entry("dev/console", 0o020600, b"")
            .file("dir/file", b"f")
            .trailer();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(
            b.files().map(|(n, _)| n).collect::<Vec<_>>(),
            vec!["dir/file"]
        );
    }

    #[test]
    fn crc_format_is_read_and_its_checksum_verified() {
        let bytes = Writer::crc().file("a", b"hello").trailer();
        assert_eq!(
            Bundle::parse(&bytes).unwrap().file("a"),
            Some(&b"hello"[..])
        );

        let mut bad = bytes.clone();
        let data_at = HEADER_LEN + 2; // after the name "a\0"
        bad[data_at] ^= 1;
        assert_eq!(
            Bundle::parse(&bad),
            Err(BundleError::BadChecksum {
                offset: 0,
                name: "a".into()
            })
        );
    }

    #[test]
    fn lowercase_hex_is_accepted() {
        let mut bytes = Writer::new().file("a", &[0; 10]).trailer();
        // filesize field: 0000000A -> 0000000a
        let at = 6 + 8 * F_FILESIZE + 7;
        assert_eq!(bytes[at], b'A');
        bytes[at] = b'a';
        assert_eq!(Bundle::parse(&bytes).unwrap().file("a").unwrap().len(), 10);
    }

    #[test]
    fn data_after_the_trailer_is_ignored() {
        let mut bytes = Writer::new().file("a", b"1").trailer();
        bytes.extend_from_slice(&[0; 512]);
        bytes.extend_from_slice(b"garbage");
        assert_eq!(Bundle::parse(&bytes).unwrap().files().count(), 1);
    }

    #[test]
    fn an_empty_input_is_refused() {
        assert_eq!(Bundle::parse(&[]), Err(BundleError::Empty));
    }

    #[test]
    fn a_compressed_bundle_is_refused_with_its_format() {
        assert_eq!(
            Bundle::parse(&[0x1f, 0x8b, 8, 0]),
            Err(BundleError::Compressed("gzip"))
        );
        let e = Bundle::parse(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap_err();
        assert!(format!("{e}").contains("zstd-compressed"), "{e}");
    }

    #[test]
    fn bad_magic_is_reported_at_the_entry_offset() {
        let mut bytes = Writer::new().file("a", b"1234").file("b", b"5").trailer();
        let second = HEADER_LEN + 2 + 4; // header, "a\0", 4 data bytes
        assert_eq!(&bytes[second..second + 6], b"070701");
        bytes[second + 5] = b'9';
        assert_eq!(
            Bundle::parse(&bytes),
            Err(BundleError::BadMagic {
                offset: second,
                odc: false
            })
        );
        let e = Bundle::parse(b"hello world").unwrap_err();
        assert_eq!(
            e,
            BundleError::BadMagic {
                offset: 0,
                odc: false
            }
        );
    }

    #[test]
    fn the_old_odc_format_is_named_in_the_error() {
        let mut odc = b"070707".to_vec();
        odc.extend_from_slice(&[b'0'; 200]);
        let e = Bundle::parse(&odc).unwrap_err();
        assert_eq!(
            e,
            BundleError::BadMagic {
                offset: 0,
                odc: true
            }
        );
        assert!(format!("{e}").contains("-H newc"), "{e}");
    }

    #[test]
    fn truncated_header_name_and_data_are_reported_with_offsets() {
        let bytes = Writer::new().file("name", b"0123456789").trailer();
        assert_eq!(
            Bundle::parse(&bytes[..50]),
            Err(BundleError::Truncated {
                offset: 0,
                part: Part::Header
            })
        );
        assert_eq!(
            Bundle::parse(&bytes[..HEADER_LEN + 2]),
            Err(BundleError::Truncated {
                offset: HEADER_LEN,
                part: Part::Name
            })
        );
        let data_at = align4(HEADER_LEN + 5);
        assert_eq!(
            Bundle::parse(&bytes[..data_at + 3]),
            Err(BundleError::Truncated {
                offset: data_at,
                part: Part::Data
            })
        );
    }

    #[test]
    fn non_hex_fields_are_named_with_their_offset() {
        let mut bytes = Writer::new().file("a", b"1").trailer();
        let at = 6 + 8 * F_NAMESIZE;
        bytes[at + 3] = b'g';
        let e = Bundle::parse(&bytes).unwrap_err();
        assert_eq!(
            e,
            BundleError::BadHex {
                offset: at,
                field: "namesize"
            }
        );
        assert!(format!("{e}").contains("'namesize'"), "{e}");
    }

    #[test]
    fn a_name_without_its_nul_is_refused() {
        let mut bytes = Writer::new().file("abc", b"1").trailer();
        bytes[HEADER_LEN + 3] = b'x'; // the NUL after "abc"
        assert_eq!(
            Bundle::parse(&bytes),
            Err(BundleError::BadName { offset: HEADER_LEN })
        );
    }

    #[test]
    fn a_missing_trailer_is_refused() {
        let w = Writer::new().file("a", b"1234").out.clone();
        assert_eq!(
            Bundle::parse(&w),
            Err(BundleError::MissingTrailer { offset: w.len() })
        );
    }

    #[test]
    fn duplicate_names_are_refused_even_with_dot_slash() {
        let bytes = Writer::new()
            .file("Image", b"1")
            .file("./Image", b"2")
            .trailer();
        let second = HEADER_LEN + 10; // header, "Image\0", 1 data byte, padded to 4
        assert_eq!(
            Bundle::parse(&bytes),
            Err(BundleError::DuplicateName {
                offset: second,
                name: "Image".into()
            })
        );
    }

    #[test]
    fn every_error_message_says_what_to_do() {
        let errors = [
            BundleError::Empty,
            BundleError::Compressed("gzip"),
            BundleError::BadMagic {
                offset: 4,
                odc: false,
            },
            BundleError::Truncated {
                offset: 4,
                part: Part::Data,
            },
            BundleError::BadHex {
                offset: 4,
                field: "mode",
            },
            BundleError::BadName { offset: 4 },
            BundleError::BadChecksum {
                offset: 4,
                name: "x".into(),
            },
            BundleError::MissingTrailer { offset: 4 },
            BundleError::DuplicateName {
                offset: 4,
                name: "x".into(),
            },
        ];
        for e in errors {
            let msg = format!("{e}");
            assert!(msg.contains(": "), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }

    /// Runs the system's `cpio -o -H newc` in a temporary directory.
    fn system_cpio(files: &[(&str, &[u8])], dirs: &[&str]) -> Vec<u8> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let tmp = std::env::temp_dir().join(format!(
            "exitless-bundle-test-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let mut list = String::new();
        for d in dirs {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
            list.push_str(&format!("./{d}\n"));
        }
        for (name, data) in files {
            std::fs::write(tmp.join(name), data).unwrap();
            list.push_str(&format!("./{name}\n"));
        }
        let mut child = Command::new("cpio")
            .args(["-o", "-H", "newc", "--quiet"])
            .current_dir(&tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cpio is installed (scripts/setup.sh)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn an_archive_written_by_gnu_cpio_is_read() {
        let image: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let bytes = system_cpio(
            &[
                ("exitless.toml", b"[[vm]]\nname = \"a\"\n"),
                ("Image", &image),
                ("sub/x", b"odd"),
            ],
            &["sub"],
        );
        // GNU cpio pads the archive to 512-byte blocks after the trailer.
        assert!(bytes.len().is_multiple_of(512));
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.config(), Some(&b"[[vm]]\nname = \"a\"\n"[..]));
        assert_eq!(b.file("Image"), Some(&image[..]));
        assert_eq!(b.file("sub/x"), Some(&b"odd"[..]));
        assert_eq!(b.files().count(), 3);
    }
}

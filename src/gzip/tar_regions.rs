//! Where the regular files' contents are in a tar stream, found while its bytes pass through.
//!
//! [`super::Cuts::Files`] starts a deflate block at each file content of at least
//! [`MIN_FILE`] bytes, so the content deflates the same wherever it sits. This reads just
//! enough of each 512-byte header (type and size) to know how far the content and its padding
//! run. A stream it cannot read as tar (a size field that is not a number) is treated as
//! opaque from there on: still compressed, only without file cuts.

/// The smallest file content that gets blocks of its own. Part of the output format.
pub const MIN_FILE: u64 = 16 * 1024;

const RECORD: u64 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// Headers, padding, small files, everything else.
    Other,
    /// The content of a regular file of at least [`MIN_FILE`] bytes.
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Content { left: u64, file: bool, padding: u64 },
    Padding { left: u64 },
    Opaque,
}

pub struct TarRegions {
    state: State,
    header: Vec<u8>,
}

impl Default for TarRegions {
    fn default() -> Self {
        TarRegions {
            state: State::Header,
            header: Vec::with_capacity(RECORD as usize),
        }
    }
}

impl TarRegions {
    /// The region the next byte is in, and how many bytes it runs from there (at least 1).
    pub fn peek(&self) -> (Region, u64) {
        match self.state {
            State::Header => (Region::Other, RECORD - self.header.len() as u64),
            State::Content {
                left, file: true, ..
            } => (Region::File, left),
            State::Content { left, .. } | State::Padding { left } => (Region::Other, left),
            State::Opaque => (Region::Other, u64::MAX),
        }
    }

    /// Moves past `bytes`, which are at most what [`TarRegions::peek`] said the region runs.
    pub fn advance(&mut self, bytes: &[u8]) {
        let n = bytes.len() as u64;
        self.state = match self.state {
            State::Header => {
                self.header.extend_from_slice(bytes);
                if self.header.len() as u64 == RECORD {
                    let next = after_header(&self.header);
                    self.header.clear();
                    next
                } else {
                    State::Header
                }
            }
            State::Content {
                left,
                file,
                padding,
            } => match left - n {
                0 if padding == 0 => State::Header,
                0 => State::Padding { left: padding },
                left => State::Content {
                    left,
                    file,
                    padding,
                },
            },
            State::Padding { left } => match left - n {
                0 => State::Header,
                left => State::Padding { left },
            },
            State::Opaque => State::Opaque,
        };
    }
}

/// What follows a complete header: its content (if any), else the next header.
fn after_header(header: &[u8]) -> State {
    let Some(size) = header_size(&header[124..136]) else {
        return State::Opaque;
    };
    let regular = matches!(header[156], b'0' | 0 | b'7');
    match size {
        0 => State::Header,
        left => State::Content {
            left,
            file: regular && size >= MIN_FILE,
            padding: (RECORD - size % RECORD) % RECORD,
        },
    }
}

/// A header's size field: octal digits (space or NUL padded), or GNU's base-256 for big files.
fn header_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return None; // negative
        }
        let mut value = u64::from(field[0] & 0x7f);
        for &byte in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(byte))?;
        }
        return Some(value);
    }
    let digits = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ');
    let mut value = 0u64;
    for digit in digits {
        if !(b'0'..=b'7').contains(&digit) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file regions found while the bytes pass, in any write pattern, are where the tar
    /// crate's reader says the large files' contents are.
    #[test]
    fn file_regions_are_where_a_tar_reader_finds_the_contents() {
        let mut tar = tar::Builder::new(Vec::new());
        let sizes = [0u64, 10, MIN_FILE - 1, MIN_FILE, 100_000, 512 * 64, 3];
        for (i, size) in sizes.iter().enumerate() {
            let mut header = tar::Header::new_gnu();
            header.set_size(*size);
            header.set_mode(0o644);
            let name = format!("{}file-{i}", "long-folder-name/".repeat(i * 3));
            tar.append_data(&mut header, name, &vec![b'x'; *size as usize][..])
                .unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "link", "file-0").unwrap();
        let bytes = tar.into_inner().unwrap();

        let mut expected = Vec::new();
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            if entry.header().entry_type().is_file() && entry.size() >= MIN_FILE {
                expected.push((entry.raw_file_position(), entry.size()));
            }
        }
        assert_eq!(expected.len(), 3);

        for piece in [1, 7, 512, 4096, 1 << 20] {
            let mut regions = TarRegions::default();
            let (mut at, mut found) = (0usize, Vec::<(u64, u64)>::new());
            while at < bytes.len() {
                let (region, run) = regions.peek();
                let n = (run.min(piece as u64) as usize).min(bytes.len() - at);
                if region == Region::File {
                    match found.last_mut() {
                        Some((start, len)) if *start + *len == at as u64 => *len += n as u64,
                        _ => found.push((at as u64, n as u64)),
                    }
                }
                regions.advance(&bytes[at..at + n]);
                at += n;
            }
            assert_eq!(found, expected, "{piece}-byte pieces");
        }
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(header_size(b"00000001750\0"), Some(1000));
        assert_eq!(header_size(b"     1750 \0\0"), Some(1000));
        assert_eq!(header_size(&[0; 12]), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 1;
        big[10] = 2;
        assert_eq!(header_size(&big), Some(513));
        assert_eq!(header_size(b"not a size!\0"), None);
    }
}

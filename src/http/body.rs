//! Request body framing: `Content-Length` and chunked transfer coding.

/// Outcome of looking for a complete chunked body in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// The body is complete: the decoded bytes and the bytes consumed.
    Complete(Vec<u8>, usize),
    /// More input is needed.
    Partial,
    /// The framing is invalid.
    Invalid,
    /// The decoded body exceeds the limit.
    TooLarge,
}

/// Decodes a chunked body from the start of `input`, up to `limit` bytes.
pub fn decode_chunked(input: &[u8], limit: usize) -> Chunked {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&input[at..]) else {
            return Chunked::Partial;
        };
        let line = &input[at..at + line_end];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .and_then(|text| usize::from_str_radix(text.trim(), 16).ok())
        else {
            return Chunked::Invalid;
        };
        at += line_end + 2;
        if size == 0 {
            // Skip trailers up to the empty line.
            loop {
                let Some(end) = find_crlf(&input[at..]) else {
                    return Chunked::Partial;
                };
                at += end + 2;
                if end == 0 {
                    return Chunked::Complete(body, at);
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Chunked::TooLarge;
        }
        if input.len() < at + size + 2 {
            return Chunked::Partial;
        }
        body.extend_from_slice(&input[at..at + size]);
        if &input[at + size..at + size + 2] != b"\r\n" {
            return Chunked::Invalid;
        }
        at += size + 2;
    }
}

fn find_crlf(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::{Chunked, decode_chunked};

    #[test]
    fn decodes_two_chunks() {
        let input = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let Chunked::Complete(body, consumed) = decode_chunked(input, 100) else {
            panic!("body not complete");
        };
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&input[consumed..], b"NEXT");
    }

    #[test]
    fn partial_until_terminator() {
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n", 100), Chunked::Partial);
    }

    #[test]
    fn rejects_bad_size_and_limit() {
        assert_eq!(decode_chunked(b"zz\r\n", 100), Chunked::Invalid);
        assert_eq!(decode_chunked(b"ff\r\n", 10), Chunked::TooLarge);
    }
}

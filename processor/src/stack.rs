//! Stack traces: the exception type and the top in-app frames of a Python,
//! Java, Go or Node trace.
//!
//! Why: two occurrences of one bug share a code path, not a message text. As
//! Google Error Reporting and Sentry do, a signature built from the exception
//! type and the innermost *in-app* frames (function and module, never line
//! numbers) survives a redeploy that only moves lines, and library frames
//! (site-packages, the standard library, node_modules, vendor, the Go and
//! Java runtimes) are skipped when the app has frames of its own, because
//! the same library frame is shared by unrelated bugs.

use memchr::memmem::FinderRev;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::LazyLock;

use crate::memo::{self, Memo};

/// Which runtime printed the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Python,
    Java,
    Go,
    Node,
}

/// One frame, without line numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Function or method name.
    pub function: String,
    /// Module, class or file (without directories that vary by deployment).
    pub module: String,
    /// False for library and runtime frames.
    pub in_app: bool,
}

impl Frame {
    /// `module:function`, the form used in signatures.
    ///
    /// Built by two copies into a string of the right size: `format!`
    /// went through the formatting machinery, several hundred
    /// instructions for every signed record with a stack trace.
    pub fn label(&self) -> String {
        concat3(&self.module, ":", &self.function)
    }
}

/// `a`, `b` and `c` in one string allocated once (what
/// `format!("{a}{b}{c}")` gives, without the formatter).
pub(crate) fn concat3(a: &str, b: &str, c: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len() + c.len());
    out.push_str(a);
    out.push_str(b);
    out.push_str(c);
    out
}

/// A parsed trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackTrace {
    pub language: Language,
    pub exception_type: Option<String>,
    pub exception_message: Option<String>,
    /// Innermost (where the error was raised) first.
    pub frames: Vec<Frame>,
    /// Byte offset in the input where the trace starts (text before it is the
    /// log message proper).
    pub start: usize,
}

impl StackTrace {
    /// The `n` innermost in-app frames as `module:function`; all frames when
    /// none is in-app.
    pub fn top_frames(&self, n: usize) -> Vec<String> {
        let any_app = self.frames.iter().any(|f| f.in_app);
        self.frames
            .iter()
            .filter(|f| f.in_app || !any_app)
            .take(n)
            .map(Frame::label)
            .collect()
    }
}

/// Quick test before parsing: does `text` look like it holds a trace?
pub fn may_contain_trace(text: &str) -> bool {
    // Every message is asked, and almost none has a newline: a SIMD search.
    memchr::memchr(b'\n', text.as_bytes()).is_some()
        && (text.contains("Traceback (most recent call last)")
            || text.contains("\tat ")
            || text.contains("    at ")
            || text.contains("goroutine "))
}

/// Parses the first stack trace found in `text`.
pub fn parse(text: &str) -> Option<StackTrace> {
    if let Some(p) = text.find("Traceback (most recent call last)") {
        return parse_python(text, p);
    }
    if text.contains("goroutine ") {
        if let Some(t) = parse_go(text) {
            return Some(t);
        }
    }
    parse_at_frames(text)
}

/// [`parse`], remembered per thread for the last few hundred traces.
///
/// Why: a bug logs the same trace text again and again, and parsing one
/// (line splitting, path classification, a `String` per frame) costs about
/// as much as the rest of a record's enrichment. The memo compares the whole
/// text ([`crate::memo`]), so the result is exactly `parse(text)`; traces
/// longer than 4 KiB are parsed every time (256 slots: at most 1 MiB of
/// keys per thread).
pub fn parse_memoized(text: &str) -> Option<Rc<StackTrace>> {
    thread_local! {
        static MEMO: RefCell<Memo<Option<Rc<StackTrace>>>> =
            const { RefCell::new(Memo::with_limits(256, 4096)) };
    }
    static OWNER: LazyLock<u64> = LazyLock::new(memo::next_owner_id);
    memo::with_thread_memo(
        &MEMO,
        *OWNER,
        |key| {
            key.part(text);
        },
        || parse(text).map(Rc::new),
    )
}

/// Offset of the start of the line containing byte `p`.
fn line_start(text: &str, p: usize) -> usize {
    text[..p].rfind('\n').map_or(0, |i| i + 1)
}

/// Directories after which a path names a library module, in order of
/// preference; searchers built once (`str::rfind` with a string pattern
/// sets one up per call, which cost more than the search on a frame path).
static PACKAGE_ROOTS: LazyLock<[FinderRev<'static>; 5]> = LazyLock::new(|| {
    [
        "site-packages/",
        "dist-packages/",
        "node_modules/",
        "/pkg/mod/",
        "vendor/",
    ]
    .map(FinderRev::new)
});

/// The last two path components without extension: stable across
/// deployments that mount the app at different roots.
fn module_from_path(path: &str) -> String {
    let path = path.trim();
    // Library code: keep what follows the package root.
    for marker in PACKAGE_ROOTS.iter() {
        if let Some(p) = marker.rfind(path.as_bytes()) {
            return strip_ext(&path[p + marker.needle().len()..]).to_string();
        }
    }
    let mut parts = path.rsplit(['/', '\\']).filter(|s| !s.is_empty());
    let file = parts.next().unwrap_or(path);
    let file = strip_ext(file);
    match parts.next() {
        Some(dir) => format!("{dir}/{file}"),
        None => file.to_string(),
    }
}

fn strip_ext(f: &str) -> &str {
    match f.rfind('.') {
        Some(d) if d > 0 && f.len() - d <= 5 => &f[..d],
        _ => f,
    }
}

fn is_library_path(path: &str) -> bool {
    const MARKERS: &[&str] = &[
        "site-packages",
        "dist-packages",
        "/lib/python",
        "<frozen",
        "node_modules",
        "node:internal",
        "internal/",
        "/usr/local/go/src/",
        "/usr/lib/go",
        "/pkg/mod/",
        "/vendor/",
        "<anonymous>",
    ];
    MARKERS.iter().any(|m| path.contains(m)) || path.starts_with("node:")
}

/// `ExcType: message` or just `ExcType`.
fn split_exception(line: &str) -> (Option<String>, Option<String>) {
    let line = line.trim();
    if line.is_empty() {
        return (None, None);
    }
    let (ty, msg) = match line.find(": ") {
        Some(p) => (&line[..p], Some(line[p + 2..].trim())),
        None => (line.trim_end_matches(':'), None),
    };
    let looks_like_type = !ty.is_empty()
        && !ty.contains(' ')
        && ty
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$' | ':'));
    if looks_like_type {
        (
            Some(ty.to_string()),
            msg.filter(|m| !m.is_empty()).map(str::to_string),
        )
    } else {
        (None, Some(line.to_string()))
    }
}

fn parse_python(text: &str, p: usize) -> Option<StackTrace> {
    let start = line_start(text, p);
    let mut frames = Vec::new();
    let mut exc_line: Option<&str> = None;
    let mut lines = text[p..].lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("File \"") {
            // File "path", line N, in func
            let Some(q) = rest.find('"') else { continue };
            let path = &rest[..q];
            let function = rest
                .rfind(", in ")
                .map(|i| rest[i + 5..].trim())
                .unwrap_or("<module>");
            frames.push(Frame {
                function: function.to_string(),
                module: module_from_path(path),
                in_app: !is_library_path(path),
            });
            // The next line is usually the source line; skip it.
            if let Some(n) = lines.peek() {
                if !n.trim_start().starts_with("File \"") && n.starts_with("    ") {
                    lines.next();
                }
            }
        } else if t.is_empty() || line.starts_with(' ') || t.starts_with('^') || t.starts_with('~')
        {
            continue;
        } else {
            // First unindented line after the frames: the exception.
            exc_line = Some(t);
            break;
        }
    }
    frames.reverse();
    let (exception_type, exception_message) = exc_line.map(split_exception).unwrap_or((None, None));
    Some(StackTrace {
        language: Language::Python,
        exception_type,
        exception_message,
        frames,
        start,
    })
}

fn parse_go(text: &str) -> Option<StackTrace> {
    let g = text.find("goroutine ")?;
    let start = text[..g]
        .rfind("panic: ")
        .map_or(line_start(text, g), |p| line_start(text, p));
    let header = text[start..g].trim();
    let (exception_type, exception_message) = if let Some(m) = header.strip_prefix("panic: ") {
        let m = m.lines().next().unwrap_or("").trim();
        // `panic: runtime error: ...` → type `runtime error`.
        match m.split_once(": ") {
            Some((ty, rest)) if !ty.contains('[') => {
                (Some(format!("panic: {ty}")), Some(rest.to_string()))
            }
            _ => (Some("panic".to_string()), Some(m.to_string())),
        }
    } else {
        (None, None)
    };
    let mut frames = Vec::new();
    let mut lines = text[g..].lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            if frames.is_empty() {
                continue;
            }
            break; // next goroutine
        }
        if line.starts_with('\t') || line.starts_with("created by") {
            continue;
        }
        // pkg/path.func(args) followed by "\t/path/file.go:12 +0x1d"
        let call = line.trim();
        let name = call.rfind('(').map_or(call, |i| &call[..i]);
        let file = match lines.peek() {
            Some(n) if n.starts_with('\t') => lines.next().unwrap_or("").trim(),
            _ => "",
        };
        let file_path = file.rsplit_once(':').map_or(file, |(a, _)| a);
        let (module, function) = match name.rfind('/') {
            Some(sl) => {
                let tail = &name[sl + 1..];
                match tail.find('.') {
                    Some(d) => (name[..sl + 1 + d].to_string(), tail[d + 1..].to_string()),
                    None => (name.to_string(), String::new()),
                }
            }
            None => match name.find('.') {
                Some(d) => (name[..d].to_string(), name[d + 1..].to_string()),
                None => (String::new(), name.to_string()),
            },
        };
        let runtime = module == "runtime" || module.starts_with("runtime/") || module == "testing";
        frames.push(Frame {
            function,
            module,
            in_app: !runtime && !is_library_path(file_path),
        });
    }
    if frames.is_empty() && exception_type.is_none() {
        return None;
    }
    Some(StackTrace {
        language: Language::Go,
        exception_type,
        exception_message,
        frames,
        start,
    })
}

/// Java (`\tat pkg.Class.method(File.java:12)`) and Node
/// (`    at fn (/app/x.js:1:2)`) traces: both list `at` lines under an
/// `Type: message` header, innermost first.
fn parse_at_frames(text: &str) -> Option<StackTrace> {
    let mut header: Option<(usize, &str)> = None;
    let mut frames = Vec::new();
    let mut language = None;
    let mut offset = 0usize;
    let mut prev: Option<(usize, &str)> = None;
    for line in text.split_inclusive('\n') {
        let here = offset;
        offset += line.len();
        let l = line.trim_end();
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix("at ") {
            if l.len() == t.len() {
                prev = Some((here, l));
                continue; // "at" at column 0 is prose
            }
            if header.is_none() {
                header = prev;
            }
            let (lang, frame) = parse_at(rest);
            language.get_or_insert(lang);
            frames.push(frame);
        } else if !frames.is_empty() {
            if t.starts_with("...") {
                continue;
            }
            // "Caused by:" and anything after: keep the outer exception.
            break;
        } else {
            prev = Some((here, l));
        }
    }
    let language = language?;
    let (start, exception_type, exception_message) = match header {
        Some((off, line)) => {
            let line = line.trim();
            let line = line
                .strip_prefix("Exception in thread \"")
                .and_then(|r| r.split_once("\" ").map(|(_, rest)| rest))
                .unwrap_or(line);
            let (t, m) = split_exception(line);
            (off, t, m)
        }
        None => (0, None, None),
    };
    Some(StackTrace {
        language,
        exception_type,
        exception_message,
        frames,
        start,
    })
}

fn parse_at(rest: &str) -> (Language, Frame) {
    let rest = rest.trim();
    // Java: pkg.Class.method(File.java:12) / (Native Method) / (Unknown Source)
    if let Some(open) = rest.find('(') {
        let inside = &rest[open + 1..rest.rfind(')').unwrap_or(rest.len())];
        let java = inside.contains(".java")
            || inside.contains(".kt")
            || inside.contains(".scala")
            || inside == "Native Method"
            || inside == "Unknown Source";
        if java {
            let qual = rest[..open].trim();
            let qual = qual.rsplit('/').next().unwrap_or(qual); // java.base/...
            let (class, method) = qual.rsplit_once('.').unwrap_or(("", qual));
            const LIB: &[&str] = &[
                "java.",
                "javax.",
                "jdk.",
                "sun.",
                "com.sun.",
                "kotlin.",
                "kotlinx.",
                "scala.",
                "org.springframework.",
                "org.apache.",
                "io.netty.",
                "reactor.",
                "org.hibernate.",
                "com.google.",
                "io.grpc.",
                "org.eclipse.",
            ];
            let in_app = !LIB.iter().any(|p| class.starts_with(p));
            return (
                Language::Java,
                Frame {
                    function: method.to_string(),
                    module: class.to_string(),
                    in_app,
                },
            );
        }
        // Node with a function name: fn (path:line:col)
        let function = rest[..open].trim().trim_start_matches("async ").to_string();
        let path = strip_line_col(inside);
        let in_app = !is_library_path(path);
        return (
            Language::Node,
            Frame {
                function,
                module: module_from_path(path),
                in_app,
            },
        );
    }
    // Node anonymous: at /app/x.js:1:2
    let path = strip_line_col(rest);
    (
        Language::Node,
        Frame {
            function: "<anonymous>".to_string(),
            module: module_from_path(path),
            in_app: !is_library_path(path),
        },
    )
}

/// `/app/x.js:10:5` → `/app/x.js`.
fn strip_line_col(s: &str) -> &str {
    let mut s = s;
    for _ in 0..2 {
        if let Some((a, b)) = s.rsplit_once(':') {
            if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) {
                s = a;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY: &str = "Error in handler\nTraceback (most recent call last):\n  File \"/usr/lib/python3.11/asyncio/runners.py\", line 118, in run\n    return self._loop.run_until_complete(task)\n  File \"/app/netra_backend/app/routes/websocket.py\", line 557, in _handle_websocket_messages\n    await ws.send_text(x)\n  File \"/home/netra/.local/lib/python3.11/site-packages/starlette/websockets.py\", line 85, in send\n    raise RuntimeError('x')\nRuntimeError: Cannot call \"send\" once a close message has been sent.\n";

    #[test]
    fn python() {
        let t = parse(PY).unwrap();
        assert_eq!(t.language, Language::Python);
        assert_eq!(t.exception_type.as_deref(), Some("RuntimeError"));
        assert_eq!(
            t.exception_message.as_deref(),
            Some("Cannot call \"send\" once a close message has been sent.")
        );
        assert_eq!(t.frames.len(), 3);
        assert_eq!(t.frames[0].module, "starlette/websockets");
        assert!(!t.frames[0].in_app);
        assert_eq!(
            t.top_frames(2),
            vec!["routes/websocket:_handle_websocket_messages"]
        );
        assert_eq!(&PY[..t.start], "Error in handler\n");
    }

    #[test]
    fn python_library_only_keeps_library_frames() {
        let s = "Traceback (most recent call last):\n  File \"/home/netra/.local/lib/python3.11/site-packages/loguru/_handler.py\", line 161, in emit\n    formatted = precomputed_format.format_map(formatter_record)\nKeyError: '\"timestamp\"'";
        let t = parse(s).unwrap();
        assert_eq!(t.exception_type.as_deref(), Some("KeyError"));
        assert_eq!(t.top_frames(3), vec!["loguru/_handler:emit"]);
    }

    #[test]
    fn java() {
        let s = "Exception in thread \"main\" java.lang.IllegalStateException: bad state 42\n\tat com.acme.app.Service.run(Service.java:10)\n\tat java.base/java.lang.Thread.run(Thread.java:833)\nCaused by: java.io.IOException: x\n\tat java.io.File.open(File.java:1)\n";
        let t = parse(s).unwrap();
        assert_eq!(t.language, Language::Java);
        assert_eq!(
            t.exception_type.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(t.frames.len(), 2);
        assert_eq!(t.top_frames(3), vec!["com.acme.app.Service:run"]);
    }

    #[test]
    fn node() {
        let s = "TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/app/src/routes/user.js:10:15)\n    at Layer.handle (/app/node_modules/express/lib/router/layer.js:95:5)\n    at /app/src/index.js:3:1";
        let t = parse(s).unwrap();
        assert_eq!(t.language, Language::Node);
        assert_eq!(t.exception_type.as_deref(), Some("TypeError"));
        assert_eq!(
            t.top_frames(3),
            vec!["routes/user:handler", "src/index:<anonymous>"]
        );
    }

    #[test]
    fn go() {
        let s = "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV]\n\ngoroutine 1 [running]:\nmain.(*Server).handle(0x0)\n\t/app/server.go:42 +0x1d\nnet/http.HandlerFunc.ServeHTTP(...)\n\t/usr/local/go/src/net/http/server.go:2136\nmain.main()\n\t/app/main.go:10 +0x25\n";
        let t = parse(s).unwrap();
        assert_eq!(t.language, Language::Go);
        assert_eq!(t.exception_type.as_deref(), Some("panic: runtime error"));
        assert_eq!(t.top_frames(3), vec!["main:(*Server).handle", "main:main"]);
    }

    #[test]
    fn line_numbers_do_not_matter() {
        let a = parse(PY).unwrap();
        let b = parse(&PY.replace("557", "912").replace("118", "7")).unwrap();
        assert_eq!(a.top_frames(3), b.top_frames(3));
    }

    #[test]
    fn no_trace() {
        assert!(parse("just a message").is_none());
        assert!(!may_contain_trace("single line at foo"));
    }

    #[test]
    fn memoized_parse_is_parse() {
        let long = format!("{PY}{}", "  File \"/app/x.py\", line 1, in f\n".repeat(200));
        assert!(long.len() > 4096, "bypasses the memo");
        let other = PY.replace("Cannot call", "Can not call");
        for text in [PY, "just a message", &long, &other, PY, &long, &other] {
            for _ in 0..2 {
                assert_eq!(parse_memoized(text).as_deref(), parse(text).as_ref());
            }
        }
    }
}

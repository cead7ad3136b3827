//! An iPXE script builder in which data can never become syntax.
//!
//! iPXE reads a script line by line (`\n`, a trailing `\r` dropped, a trailing `\` joining the
//! next line; a line starting with `:` is a label). Each line is split on whitespace with no
//! quoting of any kind; a token that starts with `#` begins a comment; the tokens `||`, `&&`
//! and `;` end a command. Only then is each token expanded: the innermost `${name[:type]}`
//! before the first `}` is replaced by the setting's value, and the scan starts over, so an
//! expanded value that holds `${…}` is expanded again. Commands read leading `-` arguments
//! as options until the first other argument or `--` (iPXE `src/image/script.c`,
//! `src/core/exec.c`, `src/core/settings.c`, `src/core/getopt.c`).
//!
//! So every value here is a [`Word`] that becomes exactly one argument with its text intact:
//!
//! - plain text (printable ASCII other than `$ { } \ #`, not `||`, `&&` or `;`) is written
//!   as it is;
//! - any other text (spaces, newlines, `#`, `${`, non-ASCII, the empty string) is carried in a
//!   setting: the line before sets `pxe-vN:hex` to its bytes, and the word becomes
//!   `${pxe-vN:string}`. Expansion happens after splitting, so the value stays one argument;
//! - text that iPXE cannot carry at all is rejected with a [`ScriptError`]: a NUL byte, and
//!   any `${` (iPXE re-expands expanded values, so it would be replaced);
//! - an argument that could start with `-` is preceded by `--`, and option values are written
//!   `--option=value`.
//!
//! Client-side values (`${mac}`, `${serial:uristring}`) are [`Setting`] references: iPXE
//! expands them on the client, after splitting, so they too stay one argument. Setting names
//! starting with `pxe-v` are reserved for the builder's own use.
//!
//! What it does not do: check that a script makes sense (that a `goto` has its label), or
//! carry a client's own setting values unchanged when they hold `${…}` (iPXE expands those).

use std::fmt::{self, Write as _};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ScriptError;

/// How iPXE formats a setting when it expands `${name:type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SettingType {
    /// The setting's own type (`${name}`).
    Default,
    /// Raw text (`:string`).
    String,
    /// Percent-encoded for a URL (`:uristring`), for client-side values in queries.
    Uristring,
    /// Colon-separated hex bytes (`:hex`).
    Hex,
    /// Hyphen-separated hex bytes (`:hexhyp`).
    Hexhyp,
    /// Hex bytes without separators (`:hexraw`).
    Hexraw,
    /// Dotted IPv4 address (`:ipv4`).
    Ipv4,
    /// A UUID (`:uuid`).
    Uuid,
}

impl SettingType {
    fn suffix(self) -> &'static str {
        match self {
            Self::Default => "",
            Self::String => ":string",
            Self::Uristring => ":uristring",
            Self::Hex => ":hex",
            Self::Hexhyp => ":hexhyp",
            Self::Hexraw => ":hexraw",
            Self::Ipv4 => ":ipv4",
            Self::Uuid => ":uuid",
        }
    }
}

/// The prefix of the settings the builder uses to carry text; users may not name theirs so.
const HOIST_PREFIX: &str = "pxe-v";

/// A validated name: a label, a setting or an image name.
fn check_name(kind: &'static str, name: &str, allow_scope: bool) -> Result<(), ScriptError> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_scope && c == '/')
        })
        && (!allow_scope || !name.starts_with(HOIST_PREFIX));
    if ok {
        Ok(())
    } else {
        Err(ScriptError::Name {
            kind,
            name: name.to_string(),
        })
    }
}

/// A reference to a setting on the client: `${name:type}`, expanded by iPXE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Setting {
    name: String,
    ty: SettingType,
}

impl Setting {
    /// A setting by name (`mac`, `net0/ip`, `serial`) formatted as `ty`.
    ///
    /// Names are ASCII letters, digits, `-`, `_`, `.` and `/` (a settings block scope);
    /// names starting with `pxe-v` are reserved for the builder.
    pub fn new(name: &str, ty: SettingType) -> Result<Self, ScriptError> {
        check_name("setting name", name, true)?;
        Ok(Self {
            name: name.to_string(),
            ty,
        })
    }

    /// `${name}`.
    pub fn named(name: &str) -> Result<Self, ScriptError> {
        Self::new(name, SettingType::Default)
    }

    /// The setting's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}{}}}", self.name, self.ty.suffix())
    }
}

/// A label in a script (`:name`), the target of `goto` and of menu items.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(String);

impl Label {
    /// A label: ASCII letters, digits, `-`, `_` and `.`, not starting with `-` or `.`.
    pub fn new(name: &str) -> Result<Self, ScriptError> {
        check_name("label", name, false)?;
        Ok(Self(name.to_string()))
    }

    /// The label's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Piece {
    /// Server-side text, carried exactly.
    Text(String),
    /// A client-side expansion.
    Setting(Setting),
    /// Text already known to be plain (a builder-made name or number).
    Plain(String),
}

/// One argument of a command: text and client-side settings, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Word(Vec<Piece>);

impl Word {
    /// A word of exactly this text.
    pub fn text(text: impl Into<String>) -> Self {
        Self(vec![Piece::Text(text.into())])
    }

    /// A word that is a client-side setting.
    pub fn setting(setting: Setting) -> Self {
        Self(vec![Piece::Setting(setting)])
    }

    /// Appends text.
    #[must_use]
    pub fn and_text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Piece::Text(text.into()));
        self
    }

    /// Appends a client-side setting.
    #[must_use]
    pub fn and_setting(mut self, setting: Setting) -> Self {
        self.0.push(Piece::Setting(setting));
        self
    }

    fn plain(text: impl Into<String>) -> Self {
        Self(vec![Piece::Plain(text.into())])
    }
}

impl From<&str> for Word {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for Word {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&String> for Word {
    fn from(text: &String) -> Self {
        Self::text(text.clone())
    }
}

impl From<Setting> for Word {
    fn from(setting: Setting) -> Self {
        Self::setting(setting)
    }
}

impl From<Label> for Word {
    fn from(label: Label) -> Self {
        Self::plain(label.0)
    }
}

impl fmt::Display for Url {
    /// The URL as the script writes it, client settings as `${name:type}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.word.0 {
            match piece {
                Piece::Text(text) | Piece::Plain(text) => f.write_str(text)?,
                Piece::Setting(setting) => write!(f, "{setting}")?,
            }
        }
        Ok(())
    }
}

impl From<Url> for Word {
    fn from(url: Url) -> Self {
        url.word
    }
}

/// A URL built from a fixed base, percent-encoded path segments and query pairs whose values
/// come from the server (encoded here) or from the client (`${name:uristring}`).
///
/// iPXE decodes a URL's `%XX` escapes and re-encodes it for the request, leaving `/` in the
/// path and `&` and `=` in the query as they are; so a segment cannot carry `/` and a query
/// value cannot carry `&` (a client value that holds one splits the parameter, as it does in
/// any iPXE script).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    word: Word,
    has_query: bool,
}

/// Every byte but those RFC 3986 calls unreserved (letters, digits, `-._~`) is encoded.
const RESERVED_AND_OTHERS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(text: &str, out: &mut String) {
    out.extend(utf8_percent_encode(text, RESERVED_AND_OTHERS));
}

impl Url {
    /// A URL starting with `base`, written as it is (`http://192.0.2.1:8080/boot`, or a path
    /// relative to the script's own URL): it must be plain (printable ASCII, no `$ { } \ #`).
    pub fn new(base: &str) -> Result<Self, ScriptError> {
        if base.is_empty() || !base.bytes().all(is_plain_byte) {
            return Err(ScriptError::Url {
                part: "base",
                value: base.to_string(),
                reason: "a base must be printable ASCII without `$ { } \\ #`",
            });
        }
        Ok(Self {
            has_query: base.contains('?'),
            word: Word::plain(base),
        })
    }

    /// Appends `/` and a path segment, percent-encoded.
    pub fn segment(mut self, segment: &str) -> Result<Self, ScriptError> {
        let reason = if segment.contains('/') {
            Some("iPXE decodes `%2F` and sends `/`, making it two segments")
        } else if segment == "." || segment == ".." || segment.is_empty() {
            Some("empty, `.` and `..` segments name no file")
        } else if self.has_query {
            Some("the url already has a query")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ScriptError::Url {
                part: "path segment",
                value: segment.to_string(),
                reason,
            });
        }
        let mut encoded = String::from("/");
        percent_encode(segment, &mut encoded);
        self.word.0.push(Piece::Plain(encoded));
        Ok(self)
    }

    fn query_key(&mut self, key: &str) -> Result<(), ScriptError> {
        if key.is_empty() || key.contains(['&', '=']) {
            return Err(ScriptError::Url {
                part: "query key",
                value: key.to_string(),
                reason: "a key must be non-empty, without `&` or `=`",
            });
        }
        let mut text = String::from(if self.has_query { "&" } else { "?" });
        percent_encode(key, &mut text);
        text.push('=');
        self.has_query = true;
        self.word.0.push(Piece::Plain(text));
        Ok(())
    }

    /// Appends a query pair whose value comes from the server, percent-encoded.
    pub fn query(mut self, key: &str, value: &str) -> Result<Self, ScriptError> {
        if value.contains('&') {
            return Err(ScriptError::Url {
                part: "query value",
                value: value.to_string(),
                reason: "iPXE decodes `%26` and sends `&`, splitting the parameter",
            });
        }
        self.query_key(key)?;
        let mut encoded = String::new();
        percent_encode(value, &mut encoded);
        self.word.0.push(Piece::Plain(encoded));
        Ok(self)
    }

    /// Appends a query pair whose value the client fills in: `key=${name:type}`. Use
    /// [`SettingType::Uristring`] for text settings, and a type whose output needs no
    /// encoding (`Hexhyp`, `Uuid`, `Ipv4`) for binary ones.
    pub fn query_setting(mut self, key: &str, setting: Setting) -> Result<Self, ScriptError> {
        self.query_key(key)?;
        self.word.0.push(Piece::Setting(setting));
        Ok(self)
    }
}

/// Whether a byte may appear in a token as it is: printable ASCII without the characters that
/// start an expansion (`$ { }`), continue a line (`\`) or start a comment (`#`).
fn is_plain_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !matches!(byte, b'$' | b'{' | b'}' | b'\\' | b'#')
}

/// One iPXE command with its options and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Command {
    name: &'static str,
    options: Vec<(&'static str, Option<Word>)>,
    args: Vec<Word>,
}

impl Command {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            options: Vec::new(),
            args: Vec::new(),
        }
    }

    fn arg(mut self, word: impl Into<Word>) -> Self {
        self.args.push(word.into());
        self
    }

    fn flag(mut self, option: &'static str) -> Self {
        self.options.push((option, None));
        self
    }

    fn option(mut self, option: &'static str, value: impl Into<Word>) -> Self {
        self.options.push((option, Some(value.into())));
        self
    }

    /// `dhcp`: configure every interface.
    pub fn dhcp() -> Self {
        Self::new("dhcp")
    }

    /// `chain URL`: fetch an image and run it, replacing nothing.
    pub fn chain(url: impl Into<Word>) -> Self {
        Self::new("chain").arg(url)
    }

    /// `kernel URL [ARGS…]`: fetch the image to boot. Add its command line with
    /// [`Command::args`] or [`Command::cmdline`].
    pub fn kernel(url: impl Into<Word>) -> Self {
        Self::new("kernel").arg(url)
    }

    /// `initrd URL`: fetch an initrd.
    pub fn initrd(url: impl Into<Word>) -> Self {
        Self::new("initrd").arg(url)
    }

    /// `imgfetch URL`: fetch an image without selecting it.
    pub fn imgfetch(url: impl Into<Word>) -> Self {
        Self::new("imgfetch").arg(url)
    }

    /// `boot`: boot the selected image.
    pub fn boot() -> Self {
        Self::new("boot")
    }

    /// `sanboot URL`: boot a disk image over the network.
    pub fn sanboot(url: impl Into<Word>) -> Self {
        Self::new("sanboot").arg(url)
    }

    /// `sanboot --drive N` with no URL: boot a local drive (`0x80` is the first BIOS disk).
    pub fn sanboot_drive(drive: u32) -> Self {
        Self::new("sanboot").option("drive", Word::plain(format!("{drive:#x}")))
    }

    /// `exit [STATUS]`: leave iPXE (on UEFI, back to the firmware's boot manager).
    pub fn exit(status: Option<u32>) -> Self {
        let command = Self::new("exit");
        match status {
            Some(status) => command.arg(Word::plain(status.to_string())),
            None => command,
        }
    }

    /// `set NAME VALUE`: store a setting on the client.
    pub fn set(setting: &str, value: impl Into<Word>) -> Result<Self, ScriptError> {
        check_name("setting name", setting, true)?;
        Ok(Self::new("set").arg(Word::plain(setting)).arg(value))
    }

    /// `echo TEXT`: print one line.
    pub fn echo(text: impl Into<Word>) -> Self {
        Self::new("echo").arg(text)
    }

    /// `menu TITLE`: start a menu.
    pub fn menu(title: impl Into<Word>) -> Self {
        Self::new("menu").arg(title)
    }

    /// `item LABEL TEXT`: a menu item that jumps to `label` when chosen.
    pub fn item(label: &Label, text: impl Into<Word>) -> Self {
        Self::new("item").arg(label.clone()).arg(text)
    }

    /// `item --gap TEXT`: a menu line that cannot be chosen.
    pub fn item_gap(text: impl Into<Word>) -> Self {
        Self::new("item").flag("gap").arg(text)
    }

    /// `choose SETTING`: show the menu and store the chosen label in `setting`.
    pub fn choose(setting: &str) -> Result<Self, ScriptError> {
        check_name("setting name", setting, true)?;
        Ok(Self::new("choose").arg(Word::plain(setting)))
    }

    /// `goto LABEL`.
    pub fn goto(label: impl Into<Word>) -> Self {
        Self::new("goto").arg(label)
    }

    /// `isset VALUE`: succeeds when the value is not empty.
    pub fn isset(value: impl Into<Word>) -> Self {
        Self::new("isset").arg(value)
    }

    /// `iseq A B`: succeeds when the two values are equal.
    pub fn iseq(a: impl Into<Word>, b: impl Into<Word>) -> Self {
        Self::new("iseq").arg(a).arg(b)
    }

    /// `params`: start a form parameter list (for `POST` with `##params`).
    pub fn params() -> Self {
        Self::new("params")
    }

    /// `param KEY VALUE`: add a parameter to the list.
    pub fn param(key: impl Into<Word>, value: impl Into<Word>) -> Self {
        Self::new("param").arg(key).arg(value)
    }

    /// `sleep SECONDS`.
    pub fn sleep(seconds: u32) -> Self {
        Self::new("sleep").arg(Word::plain(seconds.to_string()))
    }

    /// `prompt TEXT`: wait for a key.
    pub fn prompt(text: impl Into<Word>) -> Self {
        Self::new("prompt").arg(text)
    }

    /// Adds arguments after those already given (a kernel's command line, word by word).
    #[must_use]
    pub fn args<W: Into<Word>>(mut self, words: impl IntoIterator<Item = W>) -> Self {
        self.args.extend(words.into_iter().map(Into::into));
        self
    }

    /// Adds a kernel command line as iPXE will pass it: words separated by single spaces are
    /// written as they are; any other command line is carried whole in one argument, so the
    /// kernel sees exactly `cmdline`.
    #[must_use]
    pub fn cmdline(self, cmdline: &str) -> Self {
        let words: Vec<&str> = cmdline.split(' ').collect();
        if cmdline.is_empty() {
            self
        } else if words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(is_plain_byte) && !is_terminator(w))
        {
            self.args(words)
        } else {
            self.arg(cmdline)
        }
    }

    /// `--name NAME` (image commands, `menu`, `params`).
    pub fn name(self, name: &str) -> Result<Self, ScriptError> {
        check_name("image name", name, false)?;
        Ok(self.option("name", Word::plain(name)))
    }

    /// `--timeout MS` (`choose`, `prompt`, image fetches).
    #[must_use]
    pub fn timeout_ms(self, millis: u32) -> Self {
        self.option("timeout", Word::plain(millis.to_string()))
    }

    /// `--default LABEL` (`choose`), or `--default` (`item`: this item is the default).
    #[must_use]
    pub fn default(self, label: Option<&Label>) -> Self {
        match label {
            Some(label) => self.option("default", label.clone()),
            None => self.flag("default"),
        }
    }

    /// `--key KEY` (`item`, `prompt`): a shortcut key, an ASCII letter or digit.
    pub fn key(self, key: char) -> Result<Self, ScriptError> {
        if !key.is_ascii_alphanumeric() {
            return Err(ScriptError::Name {
                kind: "menu key",
                name: key.to_string(),
            });
        }
        Ok(self.option("key", Word::plain(key.to_string())))
    }

    /// `--no-describe` (`sanboot`): do not describe the SAN device to the booted OS.
    #[must_use]
    pub fn no_describe(self) -> Self {
        self.flag("no-describe")
    }

    /// `--keep` (`sanboot`, `choose`).
    #[must_use]
    pub fn keep(self) -> Self {
        self.flag("keep")
    }

    /// `--params NAME` (`param`).
    pub fn params_list(self, name: &str) -> Result<Self, ScriptError> {
        check_name("params name", name, false)?;
        Ok(self.option("params", Word::plain(name)))
    }

    /// `--autofree` (image commands).
    #[must_use]
    pub fn autofree(self) -> Self {
        self.flag("autofree")
    }

    /// `--replace` (image commands).
    #[must_use]
    pub fn replace(self) -> Self {
        self.flag("replace")
    }

    /// This command, then `other` only if this one succeeded (`&&`).
    pub fn and(self, other: Command) -> Chain {
        Chain::from(self).and(other)
    }

    /// This command, then `other` only if this one failed (`||`).
    pub fn or(self, other: Command) -> Chain {
        Chain::from(self).or(other)
    }
}

fn is_terminator(token: &str) -> bool {
    matches!(token, "||" | "&&" | ";")
}

/// How the next command of a line depends on the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Join {
    And,
    Or,
}

/// Commands on one line joined by `&&` and `||`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    first: Command,
    rest: Vec<(Join, Command)>,
    /// A trailing `||`: the line succeeds even when the last command fails.
    or_continue: bool,
}

impl Chain {
    /// Then `other` only if the line so far succeeded.
    #[must_use]
    pub fn and(mut self, other: Command) -> Self {
        self.rest.push((Join::And, other));
        self
    }

    /// Then `other` only if the line so far failed.
    #[must_use]
    pub fn or(mut self, other: Command) -> Self {
        self.rest.push((Join::Or, other));
        self
    }

    /// Ends the line with `||`, so that a failure does not end the script (iPXE stops a
    /// script at the first failing line).
    #[must_use]
    pub fn or_continue(mut self) -> Self {
        self.or_continue = true;
        self
    }
}

impl From<Command> for Chain {
    fn from(first: Command) -> Self {
        Self {
            first,
            rest: Vec::new(),
            or_continue: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Line {
    Chain(Chain),
    Label(Label),
}

/// An iPXE script: lines of commands and labels, rendered with [`Script::render`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Script {
    lines: Vec<Line>,
}

impl Script {
    /// An empty script (it renders as `#!ipxe` alone).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a line: one command, or commands joined by `&&` / `||`.
    pub fn push(&mut self, line: impl Into<Chain>) -> &mut Self {
        self.lines.push(Line::Chain(line.into()));
        self
    }

    /// Appends a label line (`:name`).
    pub fn label(&mut self, label: &Label) -> &mut Self {
        self.lines.push(Line::Label(label.clone()));
        self
    }

    /// The script's text, starting with `#!ipxe`, or the first value iPXE could not carry.
    pub fn render(&self) -> Result<String, ScriptError> {
        let mut renderer = Renderer::default();
        renderer.out.push_str("#!ipxe\n");
        for line in &self.lines {
            match line {
                Line::Label(label) => {
                    renderer.out.push(':');
                    renderer.out.push_str(label.as_str());
                    renderer.out.push('\n');
                }
                Line::Chain(chain) => renderer.chain(chain)?,
            }
        }
        Ok(renderer.out)
    }
}

#[derive(Default)]
struct Renderer {
    out: String,
    /// Settings lines (`set pxe-vN:hex …`) the current line needs first.
    prelude: String,
    next_hoist: usize,
}

impl Renderer {
    fn chain(&mut self, chain: &Chain) -> Result<(), ScriptError> {
        let mut line = String::new();
        self.command(&chain.first, &mut line)?;
        for (join, command) in &chain.rest {
            line.push_str(match join {
                Join::And => " && ",
                Join::Or => " || ",
            });
            self.command(command, &mut line)?;
        }
        if chain.or_continue {
            line.push_str(" ||");
        }
        self.out.push_str(&self.prelude);
        self.prelude.clear();
        self.out.push_str(&line);
        self.out.push('\n');
        Ok(())
    }

    fn command(&mut self, command: &Command, line: &mut String) -> Result<(), ScriptError> {
        line.push_str(command.name);
        for (option, value) in &command.options {
            line.push_str(" --");
            line.push_str(option);
            if let Some(value) = value {
                let token = self.word(value)?;
                // `--opt value` reads better; a value that may start with `-` must be inline.
                if token.may_start_with_dash {
                    line.push('=');
                } else {
                    line.push(' ');
                }
                line.push_str(&token.text);
            }
        }
        let mut options_ended = false;
        for word in &command.args {
            let token = self.word(word)?;
            if !options_ended && token.may_start_with_dash {
                line.push_str(" --");
            }
            options_ended = true;
            line.push(' ');
            line.push_str(&token.text);
        }
        Ok(())
    }

    /// Renders one word as one token, carrying text that cannot be written as it is in
    /// settings set on the lines before.
    fn word(&mut self, word: &Word) -> Result<Token, ScriptError> {
        // What the argument will be once expanded, with client settings as an unknown
        // stand-in (`None`): used to find `${` formed across pieces, and a leading `-`.
        let mut known: Vec<Option<&str>> = Vec::new();
        let mut raw = String::new();
        let all_plain = word.0.iter().all(|piece| match piece {
            Piece::Text(text) => text.bytes().all(is_plain_byte),
            Piece::Setting(_) | Piece::Plain(_) => true,
        });
        let literal_text: String = word
            .0
            .iter()
            .map(|piece| match piece {
                Piece::Text(t) | Piece::Plain(t) => t.as_str(),
                Piece::Setting(_) => "\u{0}",
            })
            .collect();
        // A word whose written form would be a terminator, or empty, is carried whole.
        let carry_all = !all_plain || literal_text.is_empty() || is_terminator(&literal_text);
        for piece in &word.0 {
            match piece {
                Piece::Plain(text) => {
                    raw.push_str(text);
                    known.push(Some(text));
                }
                Piece::Text(text) if !carry_all || text.is_empty() && word.0.len() > 1 => {
                    raw.push_str(text);
                    known.push(Some(text));
                }
                Piece::Text(text) => {
                    if text.contains('\0') {
                        return Err(ScriptError::Nul {
                            value: text.clone(),
                        });
                    }
                    if text.contains("${") {
                        return Err(ScriptError::Expansion {
                            value: text.clone(),
                        });
                    }
                    let name = self.hoist(text);
                    raw.push_str("${");
                    raw.push_str(&name);
                    raw.push_str(":string}");
                    known.push(Some(text));
                }
                Piece::Setting(setting) => {
                    let _ = write!(raw, "{setting}");
                    known.push(None);
                }
            }
        }
        if raw.is_empty() {
            // An empty word (no pieces): an empty setting keeps the argument in place.
            let name = self.hoist("");
            raw = format!("${{{name}:string}}");
        }
        // `${` formed where one carried value ends with `$` and the next starts with `{`,
        // also across a client setting that expands to nothing (an unset `${serial}`).
        let known_text: Vec<&str> = known.iter().flatten().copied().collect();
        let joined = known_text.concat();
        if joined.contains("${") {
            return Err(ScriptError::Expansion { value: joined });
        }
        let may_start_with_dash = match known.iter().find(|p| p != &&Some("")) {
            Some(Some(text)) => text.starts_with('-'),
            Some(None) => true,
            None => false,
        };
        Ok(Token {
            text: raw,
            may_start_with_dash,
        })
    }

    /// Adds `set pxe-vN:hex BYTES` (or `clear pxe-vN` for empty text) to the prelude and
    /// returns the setting's name.
    fn hoist(&mut self, text: &str) -> String {
        let name = format!("{HOIST_PREFIX}{}", self.next_hoist);
        self.next_hoist += 1;
        if text.is_empty() {
            let _ = writeln!(self.prelude, "clear {name}");
        } else {
            let _ = write!(self.prelude, "set {name}:hex ");
            for (i, byte) in text.bytes().enumerate() {
                if i > 0 {
                    self.prelude.push(':');
                }
                let _ = write!(self.prelude, "{byte:02x}");
            }
            self.prelude.push('\n');
        }
        name
    }
}

struct Token {
    text: String,
    may_start_with_dash: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A model of how iPXE reads a script, after `src/image/script.c` (lines, `\r`, `\`
    /// continuations, labels), `src/core/exec.c` (whitespace splitting, `#`, `||`, `&&`,
    /// `;`), `src/core/settings.c` (`${…}` expanded until none is left) and
    /// `src/core/getopt.c` (options until the first other argument or `--`). It executes
    /// `set` and `clear` and records every command's arguments after expansion.
    mod model {
        use std::collections::HashMap;

        /// One command as iPXE would run it.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(super) struct Executed {
            pub(super) argv: Vec<String>,
            pub(super) options: Vec<String>,
            pub(super) positionals: Vec<String>,
        }

        #[derive(Default)]
        struct Settings(HashMap<String, Vec<u8>>);

        /// C `isspace` in the "C" locale.
        fn is_space(byte: u8) -> bool {
            matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        }

        fn hex(bytes: &[u8], separator: &str) -> String {
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(separator)
        }

        /// `setting_type_uristring`: field 0 of `uri_encode`.
        fn uristring(bytes: &[u8]) -> String {
            let mut out = String::new();
            for &b in bytes {
                if !(0x20..0x7f).contains(&b) || b == b' ' || b == b'%' || b"/#:@?=&".contains(&b) {
                    out.push_str(&format!("%{b:02X}"));
                } else {
                    out.push(b as char);
                }
            }
            out
        }

        impl Settings {
            fn split_name(name: &[u8]) -> (String, Option<String>) {
                let name = String::from_utf8_lossy(name).into_owned();
                let name = match name.split_once('/') {
                    Some((_, rest)) => rest.to_string(),
                    None => name,
                };
                match name.split_once(':') {
                    Some((n, t)) => (n.to_string(), Some(t.to_string())),
                    None => (name, None),
                }
            }

            fn fetch(&self, name: &[u8]) -> Vec<u8> {
                let (name, ty) = Self::split_name(name);
                let Some(raw) = self.0.get(&name) else {
                    return Vec::new();
                };
                match ty.as_deref() {
                    None | Some("string") => raw.iter().copied().take_while(|&b| b != 0).collect(),
                    Some("hex") => hex(raw, ":").into_bytes(),
                    Some("hexhyp") => hex(raw, "-").into_bytes(),
                    Some("hexraw") => hex(raw, "").into_bytes(),
                    Some("uristring") => uristring(raw).into_bytes(),
                    Some(_) => Vec::new(),
                }
            }

            fn store(&mut self, name: &str, value: &str) -> Result<(), String> {
                let (name, ty) = Self::split_name(name.as_bytes());
                let raw = match ty.as_deref() {
                    Some("hex") if value.is_empty() => Vec::new(),
                    Some("hex") => value
                        .split(':')
                        .map(|pair| u8::from_str_radix(pair, 16).map_err(|e| e.to_string()))
                        .collect::<Result<Vec<u8>, String>>()?,
                    None | Some("string") => value.as_bytes().to_vec(),
                    Some(other) => return Err(format!("model: type {other} unsupported")),
                };
                if raw.is_empty() {
                    self.0.remove(&name);
                } else {
                    self.0.insert(name, raw);
                }
                Ok(())
            }

            /// `expand_settings`.
            fn expand(&self, token: &[u8]) -> Result<Vec<u8>, String> {
                let mut s = token.to_vec();
                for _ in 0..10_000 {
                    let mut start = None;
                    let mut end = None;
                    for i in 0..s.len() {
                        if s[i] == b'$' && s.get(i + 1) == Some(&b'{') {
                            start = Some(i);
                        }
                        if start.is_some() && s[i] == b'}' {
                            end = Some(i);
                            break;
                        }
                    }
                    let (Some(start), Some(end)) = (start, end) else {
                        return Ok(s);
                    };
                    let value = self.fetch(&s[start + 2..end]);
                    s = [&s[..start], &value[..], &s[end + 1..]].concat();
                }
                Err("model: expansion does not terminate".into())
            }
        }

        /// Whether `option` of `command` takes a separate value (`--opt value`).
        fn takes_value(command: &str, option: &str) -> bool {
            match command {
                "item" => option == "key",
                _ => matches!(
                    option,
                    "name" | "timeout" | "key" | "drive" | "params" | "default" | "set"
                ),
            }
        }

        /// `getopt_long` as iPXE's commands call it.
        fn getopt(argv: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
            let mut options = Vec::new();
            let mut i = 1;
            while i < argv.len() {
                let arg = &argv[i];
                if arg == "--" {
                    i += 1;
                    break;
                }
                let Some(option) = arg.strip_prefix("--") else {
                    if arg.starts_with('-') {
                        return Err(format!("model: short option {arg:?}"));
                    }
                    break;
                };
                i += 1;
                if !option.contains('=') && takes_value(&argv[0], option) {
                    let value = argv.get(i).ok_or("model: option needs a value")?;
                    if value.starts_with('-') {
                        return Err(format!("model: {option} value {value:?} is an option"));
                    }
                    options.push(format!("{option}={value}"));
                    i += 1;
                } else {
                    options.push(option.to_string());
                }
            }
            Ok((options, argv[i..].to_vec()))
        }

        /// Runs `script` and returns each command it would execute.
        pub(super) fn run(script: &str) -> Result<Vec<Executed>, String> {
            let data = script.as_bytes();
            if data.len() < 7 || &data[..6] != b"#!ipxe" || !is_space(data[6]) {
                return Err("model: no #!ipxe signature".into());
            }
            let mut settings = Settings::default();
            let mut executed = Vec::new();
            let mut offset = 0;
            let mut line: Vec<u8> = Vec::new();
            loop {
                let end = data[offset..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(data.len(), |p| offset + p);
                line.extend_from_slice(&data[offset..end]);
                offset = end + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.last() == Some(&b'\\') {
                    line.pop();
                    if offset < data.len() {
                        continue;
                    }
                    break;
                }
                let mut command = &line[..];
                while command.first().is_some_and(|&b| is_space(b)) {
                    command = &command[1..];
                }
                if command.first() == Some(&b':') {
                    let label_end = command
                        .iter()
                        .position(|&b| is_space(b))
                        .unwrap_or(command.len());
                    command = &command[label_end..];
                }
                system(command, &mut settings, &mut executed)?;
                line.clear();
                if offset >= data.len() {
                    break;
                }
            }
            Ok(executed)
        }

        /// `system`, with every command taken to succeed (so every command of a line runs).
        fn system(
            command: &[u8],
            settings: &mut Settings,
            executed: &mut Vec<Executed>,
        ) -> Result<(), String> {
            let tokens: Vec<&[u8]> = command
                .split(|&b| is_space(b))
                .filter(|t| !t.is_empty())
                .collect();
            let mut rest = &tokens[..];
            loop {
                let mut argc = rest.len();
                let mut more = false;
                for (i, token) in rest.iter().enumerate() {
                    if token.first() == Some(&b'#') {
                        argc = i;
                        break;
                    }
                    if matches!(*token, b"||" | b"&&" | b";") {
                        argc = i;
                        more = true;
                        break;
                    }
                }
                if argc > 0 {
                    let argv = rest[..argc]
                        .iter()
                        .map(|t| {
                            settings
                                .expand(t)
                                .map(|v| String::from_utf8_lossy(&v).into_owned())
                        })
                        .collect::<Result<Vec<String>, String>>()?;
                    let (options, positionals) = getopt(&argv)?;
                    match argv[0].as_str() {
                        "set" => settings.store(&positionals[0], &positionals[1..].join(" "))?,
                        "clear" => settings.store(&positionals[0], "")?,
                        _ => {}
                    }
                    executed.push(Executed {
                        argv,
                        options,
                        positionals,
                    });
                }
                if !more {
                    return Ok(());
                }
                rest = &rest[argc + 1..];
            }
        }
    }

    /// The commands a script runs, without the builder's own `set`/`clear` lines.
    fn visible(script: &Script) -> Result<Vec<model::Executed>, ScriptError> {
        let text = script.render()?;
        let executed = model::run(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        Ok(executed
            .into_iter()
            .filter(|c| {
                !(matches!(c.argv[0].as_str(), "set" | "clear")
                    && c.positionals[0].starts_with(HOIST_PREFIX))
            })
            .collect())
    }

    /// Whether iPXE can carry `value` at all.
    fn carriable(value: &str) -> bool {
        !value.contains('\0') && !value.contains("${")
    }

    /// Text rich in what iPXE's parser treats specially.
    fn hostile() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("$".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("#".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\\".to_string()),
            Just("||".to_string()),
            Just("&&".to_string()),
            Just(";".to_string()),
            Just("-".to_string()),
            Just(":".to_string()),
            Just("=".to_string()),
            "[a-z]{1,3}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop_oneof![
            prop::collection::vec(atom, 0..8).prop_map(|atoms| atoms.concat()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_value_is_one_argument(value in hostile()) {
            let mut script = Script::new();
            script.push(Command::echo(value.as_str()));
            match visible(&script) {
                Ok(executed) => {
                    prop_assert_eq!(executed.len(), 1);
                    prop_assert_eq!(&executed[0].positionals, &vec![value.clone()]);
                }
                Err(e) => prop_assert!(!carriable(&value), "rejected {:?}: {}", value, e),
            }
        }

        #[test]
        fn concatenated_pieces_are_one_argument(a in hostile(), b in hostile()) {
            let mut script = Script::new();
            let item = Label::new("x").unwrap();
            script.push(
                Command::item(&item, Word::text(a.clone()).and_text(b.clone()))
                    .or(Command::iseq(a.as_str(), b.as_str())),
            );
            let joined = format!("{a}{b}");
            match visible(&script) {
                Ok(executed) => {
                    prop_assert_eq!(executed.len(), 2);
                    prop_assert_eq!(&executed[0].positionals, &vec!["x".to_string(), joined]);
                    prop_assert_eq!(&executed[1].positionals, &vec![a, b]);
                }
                Err(_) => prop_assert!(!carriable(&joined)),
            }
        }

        #[test]
        fn kernel_command_line_is_exact(cmdline in hostile(), name in "[a-z]{1,8}") {
            let mut script = Script::new();
            script.push(Command::kernel("vmlinuz").name(&name).unwrap().cmdline(&cmdline));
            match visible(&script) {
                Ok(executed) => {
                    prop_assert_eq!(executed.len(), 1);
                    let argv = &executed[0].positionals;
                    prop_assert_eq!(&argv[0], "vmlinuz");
                    // iPXE joins the arguments after the image with single spaces.
                    prop_assert_eq!(argv[1..].join(" "), cmdline);
                    prop_assert_eq!(&executed[0].options, &vec![format!("name={name}")]);
                }
                Err(_) => prop_assert!(!carriable(&cmdline)),
            }
        }

        #[test]
        fn client_settings_stay_one_argument(prefix in hostile(), suffix in hostile()) {
            let mut script = Script::new();
            let word = Word::text(prefix.clone())
                .and_setting(Setting::new("serial", SettingType::Hex).unwrap())
                .and_text(suffix.clone());
            script.push(Command::echo(word));
            match visible(&script) {
                Ok(executed) => {
                    prop_assert_eq!(executed.len(), 1);
                    // The model's client has no serial: it expands to nothing.
                    prop_assert_eq!(&executed[0].positionals, &vec![format!("{prefix}{suffix}")]);
                }
                // Refused only when the text could not be carried: alone, or joined across a
                // setting that expands to nothing.
                Err(_) => prop_assert!(!carriable(&(prefix.clone() + &suffix))),
            }
        }

        #[test]
        fn url_values_reach_the_server_intact(segment in hostile(), value in hostile()) {
            let url = Url::new("http://192.0.2.1/files")
                .and_then(|u| u.segment(&segment))
                .and_then(|u| u.query("v", &value));
            let Ok(url) = url else {
                prop_assert!(
                    segment.contains('/') || matches!(segment.as_str(), "" | "." | "..")
                        || value.contains('&')
                );
                return Ok(());
            };
            let mut script = Script::new();
            script.push(Command::chain(url));
            let executed = visible(&script).unwrap();
            let sent = ipxe_request_target(&executed[0].positionals[0]);
            let (path, query) = sent.split_once('?').unwrap();
            prop_assert_eq!(percent_decode(path.rsplit('/').next().unwrap()), segment);
            prop_assert_eq!(percent_decode(query.strip_prefix("v=").unwrap()), value);
        }

        /// An iSCSI decision that is built at all reaches iPXE as it was given: the initiator
        /// name as one argument of `set`, and the root path read back (as iPXE's
        /// `iscsi_parse_root_path` and `scsi_parse_lun` read it) into the same server, port,
        /// LUN and target.
        #[test]
        fn iscsi_decisions_round_trip(
            server in prop_oneof![
                "[a-z0-9]{1,6}(\\.[a-z0-9-]{1,6}){0,2}",
                any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
                any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
                hostile(),
            ],
            target in prop_oneof![
                "iqn\\.[0-9]{4}-[0-9]{2}\\.[a-z0-9]{1,5}(\\.[a-z0-9-]{1,5}){0,2}(:[a-z0-9.:-]{0,20})?",
                "eui\\.[0-9a-f]{16}",
                hostile(),
            ],
            initiator in prop_oneof![
                "iqn\\.[0-9]{4}-[0-9]{2}\\.[a-z0-9]{1,5}(:[a-z0-9.:-]{0,20})?",
                hostile(),
            ],
            lun in any::<u8>(),
            port in proptest::option::of(1u16..),
        ) {
            let Ok(disk) = crate::IscsiBoot::new(&server, &target) else {
                return Ok(());
            };
            let mut disk = disk.lun(lun);
            if let Some(port) = port {
                disk = disk.port(port);
            }
            let Ok(disk) = disk.initiator(&initiator) else {
                return Ok(());
            };
            let mut script = Script::new();
            script
                .push(Command::set("initiator-iqn", initiator.as_str()).unwrap())
                .push(Command::sanboot(disk.root_path()));
            let executed = visible(&script).unwrap();
            prop_assert_eq!(
                &executed[0].positionals,
                &vec!["initiator-iqn".to_string(), initiator.clone()]
            );
            let root = executed[1].positionals[0].strip_prefix("iscsi:").unwrap();
            // Five fields split at `:` outside `[…]`; the fifth (the target) keeps its `:`s.
            let mut fields = Vec::new();
            let mut rest = root;
            for _ in 0..4 {
                let mut inside = false;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '[' => inside = true,
                            ']' => inside = false,
                            _ => {}
                        }
                        c == ':' && !inside
                    })
                    .map(|(i, _)| i);
                let end = end.expect("five fields");
                fields.push(&rest[..end]);
                rest = &rest[end + 1..];
            }
            let host = fields[0].trim_start_matches('[').trim_end_matches(']');
            prop_assert_eq!(host, server.as_str());
            prop_assert_eq!(fields[1], "");
            let read_port = fields[2].parse::<u16>().unwrap_or(3260);
            prop_assert_eq!(read_port, port.unwrap_or(3260));
            prop_assert_eq!(u16::from_str_radix(fields[3], 16).unwrap(), u16::from(lun));
            prop_assert_eq!(rest, target.as_str());
        }
    }

    /// What iPXE puts in its HTTP request line for `url`: `parse_uri` decodes every field,
    /// `format_uri` re-encodes path and query (escaping non-printing bytes, space, `%`, and
    /// `#:@?`).
    fn ipxe_request_target(url: &str) -> String {
        let rest = url.strip_prefix("http://").unwrap();
        let rest = &rest[rest.find('/').unwrap()..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let encode = |field: &str| {
            let mut out = String::new();
            for b in percent_decode_bytes(field) {
                if !(0x21..0x7f).contains(&b) || b == b'%' || b"#:@?".contains(&b) {
                    out.push_str(&format!("%{b:02X}"));
                } else {
                    out.push(b as char);
                }
            }
            out
        };
        format!("{}?{}", encode(path), encode(query))
    }

    fn percent_decode_bytes(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 3 <= bytes.len() {
                if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    fn percent_decode(text: &str) -> String {
        String::from_utf8(percent_decode_bytes(text)).unwrap()
    }

    #[test]
    fn plain_values_read_naturally() {
        let mut script = Script::new();
        let local = Label::new("local").unwrap();
        script
            .push(Command::dhcp().or_continue_chain())
            .push(
                Command::kernel(
                    Url::new("http://192.0.2.1:8080")
                        .unwrap()
                        .segment("vmlinuz")
                        .unwrap(),
                )
                .cmdline("console=ttyS0,115200 quiet initrd=initrd.img"),
            )
            .push(Command::initrd("initrd.img"))
            .push(Command::boot().or(Command::goto(local.clone())))
            .label(&local)
            .push(Command::sanboot_drive(0x80).no_describe());
        assert_eq!(
            script.render().unwrap(),
            "#!ipxe\n\
             dhcp ||\n\
             kernel http://192.0.2.1:8080/vmlinuz console=ttyS0,115200 quiet initrd=initrd.img\n\
             initrd initrd.img\n\
             boot || goto local\n\
             :local\n\
             sanboot --drive 0x80 --no-describe\n"
        );
    }

    impl Command {
        fn or_continue_chain(self) -> Chain {
            Chain::from(self).or_continue()
        }
    }

    #[test]
    fn hostile_values_are_carried_in_settings() {
        let mut script = Script::new();
        script.push(Command::echo("a b # c || d"));
        script.push(Command::echo("-n"));
        script.push(Command::echo(""));
        let text = script.render().unwrap();
        assert_eq!(
            text,
            "#!ipxe\n\
             set pxe-v0:hex 61:20:62:20:23:20:63:20:7c:7c:20:64\n\
             echo ${pxe-v0:string}\n\
             echo -- -n\n\
             clear pxe-v1\n\
             echo ${pxe-v1:string}\n"
        );
    }

    #[test]
    fn expansions_and_nul_are_rejected() {
        let mut script = Script::new();
        script.push(Command::kernel("vmlinuz").cmdline("root=${root}"));
        assert!(matches!(
            script.render(),
            Err(ScriptError::Expansion { .. })
        ));
        let mut script = Script::new();
        script.push(Command::echo(Word::text("a$").and_text("{b}")));
        assert!(matches!(
            script.render(),
            Err(ScriptError::Expansion { .. })
        ));
        let mut script = Script::new();
        script.push(Command::echo("a\0b"));
        assert!(matches!(script.render(), Err(ScriptError::Nul { .. })));
    }

    #[test]
    fn names_are_restricted() {
        assert!(Label::new("boot-1.x_y").is_ok());
        for bad in ["", "a b", "-x", "a$", "a}", "pxe:x"] {
            assert!(Label::new(bad).is_err(), "{bad:?}");
        }
        assert!(Setting::named("net0/mac").is_ok());
        assert!(Setting::named("pxe-v0").is_err());
        assert!(Command::set("pxe-v1", "x").is_err());
        assert!(Command::item(&Label::new("a").unwrap(), "t")
            .key('!')
            .is_err());
    }

    #[test]
    fn client_settings_render_as_expansions() {
        let url = Url::new("http://192.0.2.1/boot.ipxe")
            .unwrap()
            .query_setting("mac", Setting::new("mac", SettingType::Uristring).unwrap())
            .unwrap()
            .query("arch", "x86 64")
            .unwrap();
        let mut script = Script::new();
        script.push(Command::chain(url));
        assert_eq!(
            script.render().unwrap(),
            "#!ipxe\nchain http://192.0.2.1/boot.ipxe?mac=${mac:uristring}&arch=x86%2064\n"
        );
    }

    #[test]
    fn menus_render() {
        let linux = Label::new("linux").unwrap();
        let mut script = Script::new();
        script
            .push(Command::menu("Boot menu for web-01").name("m").unwrap())
            .push(Command::item_gap("-- choices --"))
            .push(
                Command::item(&linux, "Linux")
                    .key('l')
                    .unwrap()
                    .default(None),
            )
            .push(
                Command::choose("target")
                    .unwrap()
                    .default(Some(&linux))
                    .timeout_ms(5000)
                    .and(Command::goto(Setting::named("target").unwrap())),
            )
            .label(&linux)
            .push(
                Command::prompt("Press any key")
                    .timeout_ms(1000)
                    .or_continue_chain(),
            )
            .push(Command::sleep(1))
            .push(Command::params().name("form").unwrap())
            .push(Command::param("k", "v").params_list("form").unwrap())
            .push(Command::isset(Setting::named("serial").unwrap()).or(Command::exit(Some(1))));
        let executed = visible(&script).unwrap();
        let names: Vec<&str> = executed.iter().map(|c| c.argv[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "menu", "item", "item", "choose", "goto", "prompt", "sleep", "params", "param",
                "isset", "exit"
            ]
        );
        assert_eq!(executed[0].positionals, ["Boot menu for web-01"]);
        // The gap's text starts with `-`: it is preceded by `--`, not read as an option.
        assert_eq!(executed[1].options, ["gap"]);
        assert_eq!(executed[1].positionals, ["-- choices --"]);
        assert_eq!(executed[2].options, ["key=l", "default"]);
        assert_eq!(executed[3].options, ["default=linux", "timeout=5000"]);
    }
}

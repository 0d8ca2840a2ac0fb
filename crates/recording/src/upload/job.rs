//! An upload job (SPEC R4): the local files of one recording, the object
//! keys they go to, their tags and retention; and the job file it is kept in.
//!
//! A job file is one JSON object (format version 1):
//!
//! ```json
//! {"version":1,"id":"00000000000000000042","call_id":"a84b4c76e66710@pc33",
//!  "start_time":"2026-05-01T12:00:00.250Z","tags":{"trunk":"eu-1"},
//!  "retention_until":null,
//!  "objects":[{"key":"2026/05/01/a84b.wav","path":"/var/lib/hotsite/rec/a84b/merged.wav",
//!              "content_type":"audio/wav"}, …]}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::UploadError;

/// The job file format this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The tag that carries the job's Call-ID.
pub const TAG_CALL_ID: &str = "call-id";
/// The tag that carries the call's start time, RFC 3339 UTC with milliseconds.
pub const TAG_START_TIME: &str = "start-time";

/// S3 allows 10 tags per object; two are ours.
const MAX_EXTRA_TAGS: usize = 8;
/// S3's limits on a tag key and (after [`s3_tag_value`]) a tag value.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
/// Objects in one job: a merged file and a manifest, with room to spare.
const MAX_OBJECTS: usize = 16;
/// S3's limit on a key (bytes); the target's prefix comes on top.
const MAX_KEY: usize = 900;
/// The first instant RFC 3339 cannot write (year 10000).
const YEAR_10000_SECS: u64 = 253_402_300_800;

/// A job's id: its place in the queue (lower ids were enqueued earlier).
/// Unique among the jobs a spool holds; an id may come back once every job
/// with a higher one is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

impl JobId {
    /// The id written in a job file name or field (20 digits).
    pub(crate) fn parse(text: &str) -> Option<JobId> {
        if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(JobId)
    }
}

/// One local file and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadObject {
    /// The local file. The uploader reads it and never deletes it.
    pub path: PathBuf,
    /// The object key, below the target's prefix (`/`-separated, no empty,
    /// `.` or `..` segments).
    pub key: String,
    /// The object's `Content-Type` (S3; the local target's sidecar).
    pub content_type: String,
}

impl UploadObject {
    /// A merged recording (`audio/wav`).
    pub fn wav(path: impl Into<PathBuf>, key: impl Into<String>) -> UploadObject {
        UploadObject {
            path: path.into(),
            key: key.into(),
            content_type: "audio/wav".to_owned(),
        }
    }

    /// A manifest (`application/json`).
    pub fn json(path: impl Into<PathBuf>, key: impl Into<String>) -> UploadObject {
        UploadObject {
            path: path.into(),
            key: key.into(),
            content_type: "application/json".to_owned(),
        }
    }
}

/// What to upload for one recording: its files (uploaded in this order, so
/// put the manifest last: a manifest in the bucket then means its recording
/// is there too), tags and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadJob {
    /// The files, uploaded in order.
    pub objects: Vec<UploadObject>,
    /// The call's Call-ID: tag [`TAG_CALL_ID`].
    pub call_id: String,
    /// When the call started: tag [`TAG_START_TIME`], RFC 3339 UTC.
    pub start_time: SystemTime,
    /// More tags (at most 8; keys of letters, digits, space and `+-=._:/@`,
    /// not `call-id`, `start-time` or `aws:…`).
    pub extra_tags: BTreeMap<String, String>,
    /// Keep the objects locked at least until then (S3 Object Lock). The
    /// later of this and the target's `retain_days` after `start_time` wins.
    pub retention_until: Option<SystemTime>,
}

impl UploadJob {
    /// A job for `objects` of the call `call_id` started at `start_time`,
    /// with no extra tags and the target's default retention.
    pub fn new(
        call_id: impl Into<String>,
        start_time: SystemTime,
        objects: Vec<UploadObject>,
    ) -> UploadJob {
        UploadJob {
            objects,
            call_id: call_id.into(),
            start_time,
            extra_tags: BTreeMap::new(),
            retention_until: None,
        }
    }

    /// The tags every object of the job carries: Call-ID, start time, extras
    /// (exact values; S3 gets them through [`s3_tag_value`]).
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            (TAG_CALL_ID.to_owned(), self.call_id.clone()),
            (
                TAG_START_TIME.to_owned(),
                format_time(self.start_time).unwrap_or_default(),
            ),
        ];
        tags.extend(self.extra_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        tags
    }

    /// Checks everything that would make the job fail forever, so that it is
    /// refused at enqueue instead.
    pub(crate) fn validate(&self) -> Result<(), UploadError> {
        let invalid = |reason: String| Err(UploadError::InvalidJob { reason });
        if self.objects.is_empty() {
            return invalid("no objects".to_owned());
        }
        if self.objects.len() > MAX_OBJECTS {
            return invalid(format!(
                "{} objects (at most {MAX_OBJECTS})",
                self.objects.len()
            ));
        }
        for (i, object) in self.objects.iter().enumerate() {
            check_key(&object.key).or_else(|reason| invalid(format!("object {i}: {reason}")))?;
            if self.objects[..i].iter().any(|o| o.key == object.key) {
                return invalid(format!("object {i}: key {:?} appears twice", object.key));
            }
            if object.path.to_str().is_none() {
                return invalid(format!("object {i}: path {:?} is not UTF-8", object.path));
            }
            if !object.path.is_absolute() {
                return invalid(format!(
                    "object {i}: path {:?} is not absolute (the uploader may run elsewhere)",
                    object.path
                ));
            }
            if object.content_type.is_empty()
                || !object
                    .content_type
                    .bytes()
                    .all(|b| b.is_ascii_graphic() || b == b' ')
            {
                return invalid(format!(
                    "object {i}: content type {:?} is not a header value",
                    object.content_type
                ));
            }
        }
        if self.call_id.is_empty() {
            return invalid("empty Call-ID".to_owned());
        }
        if let Err(e) = format_time(self.start_time) {
            return invalid(format!("start time: {e}"));
        }
        if let Some(Err(e)) = self.retention_until.map(format_time) {
            return invalid(format!("retention until: {e}"));
        }
        if self.extra_tags.len() > MAX_EXTRA_TAGS {
            return invalid(format!(
                "{} extra tags (at most {MAX_EXTRA_TAGS})",
                self.extra_tags.len()
            ));
        }
        for key in self.extra_tags.keys() {
            check_tag_key(key).or_else(|reason| invalid(format!("tag {key:?}: {reason}")))?;
        }
        for (key, value) in self.tags() {
            let encoded = s3_tag_value(&value);
            if encoded.len() > MAX_TAG_VALUE {
                return invalid(format!(
                    "tag {key:?}: value is {} characters as an S3 tag (at most {MAX_TAG_VALUE})",
                    encoded.len()
                ));
            }
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty key".to_owned());
    }
    if key.len() > MAX_KEY {
        return Err(format!("key is {} bytes (at most {MAX_KEY})", key.len()));
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(format!(
            "key {key:?} has an empty, `.` or `..` segment (or a leading, trailing or double `/`)"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("key {key:?} has a control character"));
    }
    // A local target writes `<key>.tags.json` beside each object.
    if key.ends_with(super::store::TAGS_SIDECAR_SUFFIX) {
        return Err(format!(
            "key {key:?} ends in {}",
            super::store::TAGS_SIDECAR_SUFFIX
        ));
    }
    object_store::path::Path::parse(key).map_err(|e| format!("key {key:?}: {e}"))?;
    Ok(())
}

fn check_tag_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_TAG_KEY {
        return Err(format!("key must be 1 to {MAX_TAG_KEY} characters"));
    }
    if key == TAG_CALL_ID || key == TAG_START_TIME {
        return Err("reserved for the job's own tags".to_owned());
    }
    if key.starts_with("aws:") {
        return Err("the aws: prefix is reserved by S3".to_owned());
    }
    if !key.bytes().all(|b| is_tag_safe(b) || b == b'=') {
        return Err("only letters, digits, space and +-=._:/@ are allowed".to_owned());
    }
    Ok(())
}

/// Bytes S3 takes in a tag as they are (ASCII letters and digits, space,
/// `+ - . _ : / @`); `=` is the escape of [`s3_tag_value`].
fn is_tag_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" +-._:/@".contains(&b)
}

/// A tag value as S3 takes it: bytes S3 refuses in tags (a Call-ID may hold
/// `!%*~()<>"'[]?{}` and more) are written `=XX` (their UTF-8 bytes in hex),
/// and `=` itself `=3D`, so the exact value can be read back. Most Call-IDs
/// (`hex@host`) are unchanged.
pub fn s3_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if is_tag_safe(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// RFC 3339 UTC with milliseconds, or why `time` cannot be written so.
pub(crate) fn format_time(time: SystemTime) -> Result<String, String> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < YEAR_10000_SECS => {
            Ok(humantime::format_rfc3339_millis(time).to_string())
        }
        Ok(_) => Err("after year 9999".to_owned()),
        Err(_) => Err("before 1970".to_owned()),
    }
}

/// RFC 3339 UTC in whole seconds, rounded up (a retain-until date: never
/// earlier than asked).
pub(crate) fn format_time_seconds_up(time: SystemTime) -> Result<String, String> {
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "before 1970".to_owned())?;
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    if secs >= YEAR_10000_SECS {
        return Err("after year 9999".to_owned());
    }
    Ok(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string())
}

/// The job file as serde reads and writes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobFile {
    version: u32,
    id: String,
    call_id: String,
    start_time: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    retention_until: Option<String>,
    objects: Vec<ObjectFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectFile {
    key: String,
    path: PathBuf,
    content_type: String,
}

/// The bytes of job `id`'s file. The job was validated.
pub(crate) fn encode(id: JobId, job: &UploadJob) -> Result<Vec<u8>, UploadError> {
    let time = |t: SystemTime| format_time(t).map_err(|reason| UploadError::InvalidJob { reason });
    let file = JobFile {
        version: FORMAT_VERSION,
        id: id.to_string(),
        call_id: job.call_id.clone(),
        start_time: time(job.start_time)?,
        tags: job.extra_tags.clone(),
        retention_until: job.retention_until.map(time).transpose()?,
        objects: job
            .objects
            .iter()
            .map(|o| ObjectFile {
                key: o.key.clone(),
                path: o.path.clone(),
                content_type: o.content_type.clone(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec(&file).map_err(|e| UploadError::InvalidJob {
        reason: format!("cannot encode: {e}"),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Job `expected`'s file read back, or what is wrong with it.
pub(crate) fn decode(expected: JobId, bytes: &[u8]) -> Result<UploadJob, String> {
    let file: JobFile = serde_json::from_slice(bytes).map_err(|e| format!("not a job: {e}"))?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this build reads {FORMAT_VERSION})",
            file.version
        ));
    }
    if JobId::parse(&file.id) != Some(expected) {
        return Err(format!(
            "id {:?} does not match its file name ({expected})",
            file.id
        ));
    }
    let time = |what: &str, text: &str| {
        humantime::parse_rfc3339(text).map_err(|e| format!("{what} {text:?}: {e}"))
    };
    let job = UploadJob {
        objects: file
            .objects
            .into_iter()
            .map(|o| UploadObject {
                path: o.path,
                key: o.key,
                content_type: o.content_type,
            })
            .collect(),
        call_id: file.call_id,
        start_time: time("start_time", &file.start_time)?,
        extra_tags: file.tags,
        retention_until: file
            .retention_until
            .map(|t| time("retention_until", &t))
            .transpose()?,
    };
    job.validate().map_err(|e| e.to_string())?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> UploadJob {
        UploadJob::new(
            "a84b4c76e66710@pc33.example.com",
            UNIX_EPOCH + Duration::from_millis(1_777_636_800_250),
            vec![
                UploadObject::wav("/rec/a84b/merged.wav", "2026/05/01/a84b.wav"),
                UploadObject::json("/rec/a84b/manifest.json", "2026/05/01/a84b.json"),
            ],
        )
    }

    #[test]
    fn r4_job_file_round_trips() {
        let mut job = job();
        job.extra_tags.insert("trunk".into(), "eu-1".into());
        job.retention_until = Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000));
        let bytes = encode(JobId(42), &job).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""start_time":"2026-05-01T12:00:00.250Z""#),
            "{text}"
        );
        assert!(text.contains(r#""id":"00000000000000000042""#), "{text}");
        assert_eq!(decode(JobId(42), &bytes).unwrap(), job);
        assert!(decode(JobId(43), &bytes)
            .unwrap_err()
            .contains("does not match"));
    }

    #[test]
    fn r4_decode_names_what_is_wrong() {
        assert!(decode(JobId(1), b"{\"version\":1")
            .unwrap_err()
            .contains("not a job"));
        let bytes = encode(JobId(1), &job()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let v2 = text.replace("\"version\":1", "\"version\":2");
        assert!(decode(JobId(1), v2.as_bytes())
            .unwrap_err()
            .contains("format version 2"));
        let bad_time = text.replace("2026-05-01T12:00:00.250Z", "yesterday");
        assert!(decode(JobId(1), bad_time.as_bytes())
            .unwrap_err()
            .contains("start_time"));
        let no_objects = text.replace(
            &text[text.find("\"objects\"").unwrap()..text.rfind('}').unwrap()],
            "\"objects\":[]",
        );
        assert!(decode(JobId(1), no_objects.as_bytes())
            .unwrap_err()
            .contains("no objects"));
    }

    #[test]
    fn r4_enqueue_refuses_jobs_that_could_never_upload() {
        let refused = |change: &dyn Fn(&mut UploadJob), needle: &str| {
            let mut job = job();
            change(&mut job);
            let error = job.validate().unwrap_err().to_string();
            assert!(error.contains(needle), "{error} should name {needle:?}");
        };
        refused(&|j| j.objects.clear(), "no objects");
        refused(
            &|j| j.objects[1].key = j.objects[0].key.clone(),
            "appears twice",
        );
        refused(&|j| j.objects[0].key = "a//b".into(), "empty");
        refused(&|j| j.objects[0].key = "a/../b".into(), "`..`");
        refused(
            &|j| j.objects[0].key = "x.wav.tags.json".into(),
            ".tags.json",
        );
        refused(
            &|j| j.objects[0].path = "rel/merged.wav".into(),
            "not absolute",
        );
        refused(&|j| j.call_id.clear(), "Call-ID");
        refused(
            &|j| j.start_time = UNIX_EPOCH - Duration::from_secs(1),
            "before 1970",
        );
        refused(
            &|j| {
                j.extra_tags.insert("call-id".into(), "x".into());
            },
            "reserved",
        );
        refused(
            &|j| {
                j.extra_tags.insert("aws:x".into(), "x".into());
            },
            "aws:",
        );
        refused(
            &|j| {
                j.extra_tags.insert("bad!key".into(), "x".into());
            },
            "only letters",
        );
        refused(&|j| j.call_id = "!".repeat(100), "at most 256");
        assert!(job().validate().is_ok());
    }

    #[test]
    fn r4_tag_values_escape_what_s3_refuses_and_stay_readable() {
        assert_eq!(
            s3_tag_value("a84b4c76e66710@pc33.example.com"),
            "a84b4c76e66710@pc33.example.com"
        );
        assert_eq!(
            s3_tag_value("2026-05-01T12:00:00.250Z"),
            "2026-05-01T12:00:00.250Z"
        );
        assert_eq!(s3_tag_value("x=y!%"), "x=3Dy=21=25");
        assert_eq!(s3_tag_value("é"), "=C3=A9");
    }

    #[test]
    fn retain_until_rounds_up_to_the_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1_777_636_800_250);
        assert_eq!(format_time_seconds_up(t).unwrap(), "2026-05-01T12:00:01Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_777_636_800);
        assert_eq!(
            format_time_seconds_up(whole).unwrap(),
            "2026-05-01T12:00:00Z"
        );
        assert!(format_time(UNIX_EPOCH + Duration::from_secs(YEAR_10000_SECS)).is_err());
    }
}

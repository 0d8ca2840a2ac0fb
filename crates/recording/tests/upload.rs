//! The upload (SPEC R4) against real stores: moto's S3 server on loopback
//! (`scripts/moto-s3`; skipped with a message when moto is not installed,
//! failed under CI=true), and the local folder target on a missing, full or
//! read-only directory.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotsite_recording::upload::{
    LockMode, ObjectLock, StoreTarget, UploadConfig, UploadJob, UploadObject, UploadQueue,
    UploadStats, Uploader,
};
use serde_json::Value;
use tokio::sync::watch;

const MOTO_S3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-s3");
const BUCKET: &str = "recordings";
const WAIT: Duration = Duration::from_secs(60);

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hotsite-upload-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 2026-05-01T12:00:00.250Z
fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_777_636_800_250)
}

/// A recording's files in `dir`: a merged "WAV" of `wav_len` bytes and a
/// manifest. Returns the job and the files' bytes.
fn recording(
    dir: &Path,
    call_id: &str,
    name: &str,
    wav_len: usize,
) -> (UploadJob, Vec<u8>, Vec<u8>) {
    let wav: Vec<u8> = (0..wav_len).map(|i| (i * 7 + name.len()) as u8).collect();
    let manifest = format!("{{\"call_id\":{call_id:?},\"name\":{name:?}}}\n").into_bytes();
    let wav_path = dir.join(format!("{name}.wav"));
    let manifest_path = dir.join(format!("{name}.json"));
    std::fs::write(&wav_path, &wav).unwrap();
    std::fs::write(&manifest_path, &manifest).unwrap();
    let job = UploadJob::new(
        call_id,
        start_time(),
        vec![
            UploadObject::wav(wav_path, format!("2026/05/01/{name}.wav")),
            UploadObject::json(manifest_path, format!("2026/05/01/{name}.json")),
        ],
    );
    (job, wav, manifest)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fast retries, so that outages in tests take milliseconds.
fn fast(target: StoreTarget) -> UploadConfig {
    UploadConfig {
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        ..UploadConfig::new(target)
    }
}

async fn wait_for(
    stats: &mut watch::Receiver<UploadStats>,
    what: &str,
    done: impl Fn(&UploadStats) -> bool,
) -> UploadStats {
    let waited = tokio::time::timeout(WAIT, stats.wait_for(|s| done(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match waited {
        Ok(Ok(stats)) => stats,
        Ok(Err(_)) => panic!("uploader stopped while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}; stats: {:?}", *stats.borrow()),
    }
}

// ---------------------------------------------------------------- moto

/// moto's S3 server, stopped (by its pid) when dropped; it also stops when
/// its stdin closes, so a test process that dies takes it along.
struct Moto {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

impl Moto {
    /// Starts moto on a free port (or `port`); `None` when moto is missing
    /// and this is not CI.
    fn start(port: Option<u16>) -> Option<Moto> {
        if !moto_installed() {
            return None;
        }
        let mut command = Command::new(MOTO_S3);
        command.arg("serve");
        if let Some(port) = port {
            command.args(["--port", &port.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/moto-s3 serve starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).expect("moto says its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("moto said {line:?}, not PORT <n>"));
        Some(Moto {
            child,
            _stdin: stdin,
            port,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let mut args = vec![
            "create-bucket".to_owned(),
            self.endpoint(),
            bucket.to_owned(),
        ];
        if object_lock {
            args.push("--object-lock".into());
        }
        moto_s3(&args);
    }

    fn inspect(&self, bucket: &str, key: &str) -> Value {
        moto_s3(&["inspect".into(), self.endpoint(), bucket.into(), key.into()])
    }

    fn keys(&self, bucket: &str) -> Value {
        moto_s3(&["keys".into(), self.endpoint(), bucket.into()])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_s3(args: &[String]) -> Value {
    let output = Command::new(MOTO_S3)
        .args(args)
        .output()
        .expect("scripts/moto-s3 runs");
    assert!(
        output.status.success(),
        "moto-s3 {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "moto-s3 {args:?} printed {:?}: {e}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn moto_installed() -> bool {
    let output = Command::new(MOTO_S3).arg("check").output();
    let ok = matches!(&output, Ok(o) if o.status.success());
    if !ok {
        let why = match &output {
            Ok(o) => format!(
                "{} {}{} (install: python3 -m pip install 'moto[server]==5.2.1')",
                o.status,
                String::from_utf8_lossy(&o.stdout).trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("cannot run {MOTO_S3}: {e}"),
        };
        if std::env::var_os("CI").is_some() {
            panic!("CI needs moto for the S3 upload tests: {why}");
        }
        eprintln!("SKIPPED: S3 upload test needs moto: {why}");
    }
    ok
}

fn s3_target(moto_endpoint: &str, object_lock: Option<ObjectLock>) -> StoreTarget {
    StoreTarget::S3 {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(moto_endpoint.to_owned()),
        access_key_id: "test-key".into(),
        secret_access_key: "test-secret".into(),
        prefix: "site-a".into(),
        allow_http: true,
        object_lock,
    }
}

// ---------------------------------------------------------------- S3 tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_s3_objects_have_the_bytes_tags_and_object_lock_retention() {
    let Some(moto) = Moto::start(None) else {
        return;
    };
    moto.create_bucket(BUCKET, true);
    let dir = temp_dir("s3-tags");
    let lock = ObjectLock {
        mode: LockMode::Governance,
        retain_days: 3650,
    };
    let queue = UploadQueue::open(dir.join("upload-queue")).unwrap();
    let uploader = Uploader::start(queue, &fast(s3_target(&moto.endpoint(), Some(lock)))).unwrap();
    let mut stats = uploader.subscribe();

    let (mut first, wav, manifest) =
        recording(&dir, "a84b4c76e66710@pc33.example.com", "first", 300_000);
    first.extra_tags.insert("trunk".into(), "eu-1".into());
    uploader.enqueue(first).await.unwrap();
    // A Call-ID with characters S3 refuses in tags, and a retention longer
    // than the policy's.
    let (mut second, _, _) = recording(&dir, "odd!call(id)@host", "second", 1_000);
    second.retention_until = Some(start_time() + Duration::from_secs(4000 * 86_400));
    uploader.enqueue(second).await.unwrap();

    let done = wait_for(&mut stats, "two uploaded jobs", |s| s.uploaded_jobs == 2).await;
    assert_eq!(
        (done.pending, done.uploaded_objects, done.failed_attempts),
        (0, 4, 0),
        "{done:?}"
    );
    uploader.shutdown().await;

    let wav_object = moto.inspect(BUCKET, "site-a/2026/05/01/first.wav");
    assert_eq!(wav_object["size"], 300_000);
    assert_eq!(wav_object["sha256"], sha256_hex(&wav));
    assert_eq!(wav_object["content_type"], "audio/wav");
    assert_eq!(
        wav_object["tags"],
        serde_json::json!({
            "call-id": "a84b4c76e66710@pc33.example.com",
            "start-time": "2026-05-01T12:00:00.250Z",
            "trunk": "eu-1",
        })
    );
    // 3650 days after the start, rounded up to the second.
    assert_eq!(
        wav_object["retention"],
        serde_json::json!({"mode": "GOVERNANCE", "until": "2036-04-28T12:00:01+00:00"})
    );
    let manifest_object = moto.inspect(BUCKET, "site-a/2026/05/01/first.json");
    assert_eq!(manifest_object["sha256"], sha256_hex(&manifest));
    assert_eq!(manifest_object["content_type"], "application/json");

    let odd = moto.inspect(BUCKET, "site-a/2026/05/01/second.wav");
    assert_eq!(odd["tags"]["call-id"], "odd=21call=28id=29@host");
    assert_eq!(odd["retention"]["until"], "2037-04-13T12:00:01+00:00");

    // Done means gone from the spool, for good.
    assert_eq!(
        UploadQueue::open(dir.join("upload-queue")).unwrap().len(),
        0
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_s3_unreachable_keeps_the_job_and_its_files_and_retries_until_it_is_back() {
    let Some(moto) = Moto::start(None) else {
        return;
    };
    let port = moto.port;
    let endpoint = moto.endpoint();
    drop(moto); // S3 is unreachable from here on.
    let dir = temp_dir("s3-down");
    let spool = dir.join("upload-queue");

    // Enqueued with no uploader running, as if the process stopped right
    // after the enqueue: a fresh open finds it.
    let (job, wav, _) = recording(&dir, "down@site-a", "down", 50_000);
    let wav_path = job.objects[0].path.clone();
    let id = UploadQueue::open(&spool).unwrap().enqueue(job).unwrap();
    let queue = UploadQueue::open(&spool).unwrap();
    assert_eq!(queue.pending().map(|(i, _)| i).collect::<Vec<_>>(), [id]);

    let uploader = Uploader::start(queue, &fast(s3_target(&endpoint, None))).unwrap();
    let mut stats = uploader.subscribe();
    let failing = wait_for(&mut stats, "three failed attempts", |s| {
        s.failed_attempts >= 3
    })
    .await;
    assert_eq!(
        (failing.pending, failing.uploaded_jobs),
        (1, 0),
        "{failing:?}"
    );
    assert!(failing.store_down);
    let error = failing.last_error.unwrap();
    assert!(
        error.contains("not confirmed") && error.contains("site-a/2026/05/01/down.wav"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&wav_path).unwrap(),
        wav,
        "the recording stays local"
    );
    assert!(
        spool.join(format!("{id}.job.json")).exists(),
        "the job stays queued"
    );

    // S3 is back (a new moto on the same port, so its bucket is new too).
    let moto = Moto::start(Some(port)).expect("moto restarts");
    moto.create_bucket(BUCKET, false);
    let done = wait_for(&mut stats, "the upload after the outage", |s| {
        s.uploaded_jobs == 1
    })
    .await;
    assert!(!done.store_down);
    uploader.shutdown().await;
    assert_eq!(
        moto.inspect(BUCKET, "site-a/2026/05/01/down.wav")["sha256"],
        sha256_hex(&wav)
    );
    assert_eq!(
        moto.inspect(BUCKET, "site-a/2026/05/01/down.wav")["retention"],
        Value::Null
    );
    assert!(!spool.join(format!("{id}.job.json")).exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The child of [`r4_kill_9_mid_upload_then_restart_resumes_and_completes`]:
/// enqueues a job and uploads it to a server that never answers, until it
/// is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by r4_kill_9_mid_upload_then_restart_resumes_and_completes"]
async fn upload_child_enqueues_then_hangs_in_put() {
    let (Some(dir), Some(endpoint)) = (
        std::env::var_os("HOTSITE_UPLOAD_CHILD_DIR"),
        std::env::var("HOTSITE_UPLOAD_CHILD_ENDPOINT").ok(),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let queue = UploadQueue::open(dir.join("upload-queue")).unwrap();
    let mut config = fast(s3_target(&endpoint, None));
    config.request_timeout = Duration::from_secs(120);
    let uploader = Uploader::start(queue, &config).unwrap();
    let (job, _, _) = recording(&dir, "killed@site-a", "killed", 200_000);
    let id = uploader.enqueue(job).await.unwrap();
    println!("ENQUEUED {id}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    unreachable!("the parent kills this process first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_kill_9_mid_upload_then_restart_resumes_and_completes() {
    let Some(moto) = Moto::start(None) else {
        return;
    };
    moto.create_bucket(BUCKET, false);
    let dir = temp_dir("kill9");

    // An "S3" that accepts the PUT and never answers: the child is killed
    // with its upload in flight.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole_endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    let (put_seen, put_seen_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = blackhole.accept() else {
            return;
        };
        let mut head = [0u8; 64];
        let n = conn.read(&mut head).unwrap_or(0);
        let _ = put_seen.send(String::from_utf8_lossy(&head[..n]).into_owned());
        // Hold the connection until the child is gone.
        let mut sink = [0u8; 65536];
        while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
    });

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "upload_child_enqueues_then_hangs_in_put",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("HOTSITE_UPLOAD_CHILD_DIR", &dir)
        .env("HOTSITE_UPLOAD_CHILD_ENDPOINT", &blackhole_endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ENQUEUED ") && line_tx.send(line).is_err() {
                return;
            }
        }
    });
    let enqueued = line_rx.recv_timeout(WAIT).expect("the child enqueues");
    let head = put_seen_rx
        .recv_timeout(WAIT)
        .expect("the child's PUT reaches the blackhole");
    assert!(
        head.starts_with("PUT /recordings/site-a/2026/05/01/killed.wav"),
        "{head}"
    );
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    child.wait().unwrap();

    let queue = UploadQueue::open(dir.join("upload-queue")).unwrap();
    let pending: Vec<String> = queue
        .pending()
        .map(|(id, _)| format!("ENQUEUED {id}"))
        .collect();
    assert_eq!(pending, [enqueued], "the job survived kill -9");
    let uploader = Uploader::start(queue, &fast(s3_target(&moto.endpoint(), None))).unwrap();
    let mut stats = uploader.subscribe();
    wait_for(&mut stats, "the resumed upload", |s| s.uploaded_jobs == 1).await;
    uploader.shutdown().await;
    let wav = std::fs::read(dir.join("killed.wav")).unwrap();
    assert_eq!(
        moto.inspect(BUCKET, "site-a/2026/05/01/killed.wav")["sha256"],
        sha256_hex(&wav)
    );
    assert_eq!(
        moto.keys(BUCKET),
        serde_json::json!([
            "site-a/2026/05/01/killed.json",
            "site-a/2026/05/01/killed.wav"
        ])
    );
    assert!(UploadQueue::open(dir.join("upload-queue"))
        .unwrap()
        .is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------- local target

fn local_target(dir: &Path) -> StoreTarget {
    StoreTarget::Local {
        dir: dir.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_local_target_missing_is_named_and_retried_then_objects_and_tag_sidecars_land() {
    let dir = temp_dir("local-missing");
    let target = dir.join("store");
    let queue = UploadQueue::open(dir.join("upload-queue")).unwrap();
    let uploader = Uploader::start(queue, &fast(local_target(&target))).unwrap();
    let mut stats = uploader.subscribe();
    let (job, wav, manifest) = recording(&dir, "local@site-a", "local", 10_000);
    uploader.enqueue(job).await.unwrap();

    let failing = wait_for(&mut stats, "two failed attempts", |s| {
        s.failed_attempts >= 2
    })
    .await;
    let error = failing.last_error.clone().unwrap();
    assert!(error.contains("does not exist"), "{error}");
    assert_eq!(failing.pending, 1);
    assert!(
        !target.exists(),
        "the uploader never creates the target (an unmounted share)"
    );

    std::fs::create_dir(&target).unwrap();
    wait_for(&mut stats, "the upload", |s| s.uploaded_jobs == 1).await;
    uploader.shutdown().await;
    assert_eq!(
        std::fs::read(target.join("2026/05/01/local.wav")).unwrap(),
        wav
    );
    assert_eq!(
        std::fs::read(target.join("2026/05/01/local.json")).unwrap(),
        manifest
    );
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(target.join("2026/05/01/local.wav.tags.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        sidecar["tags"],
        serde_json::json!({"call-id": "local@site-a", "start-time": "2026-05-01T12:00:00.250Z"})
    );
    assert_eq!(sidecar["sha256"], sha256_hex(&wav));
    assert_eq!(sidecar["content_type"], "audio/wav");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_local_target_full_then_read_only_disk_keeps_the_job_and_retries() {
    let dir = temp_dir("local-full");
    let target = dir.join("store");
    std::fs::create_dir(&target).unwrap();
    // A 64 KiB disk for a 200 KB recording. Needs root (CI runs as root).
    let Some(tmpfs) = Tmpfs::mount(&target, "size=64k") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root; the full-disk case is not run");
        std::fs::remove_dir_all(dir).unwrap();
        return;
    };
    let queue = UploadQueue::open(dir.join("upload-queue")).unwrap();
    let uploader = Uploader::start(queue, &fast(local_target(&target))).unwrap();
    let mut stats = uploader.subscribe();
    let (job, wav, _) = recording(&dir, "full@site-a", "full", 200_000);
    uploader.enqueue(job).await.unwrap();

    let full = wait_for(&mut stats, "a full-disk failure", |s| {
        s.failed_attempts >= 2
    })
    .await;
    let error = full.last_error.clone().unwrap();
    assert!(error.contains("is full"), "{error}");
    assert_eq!(full.pending, 1);

    // Bigger, but read-only now.
    tmpfs.remount("ro,size=4m");
    let before = stats.borrow().failed_attempts;
    let read_only = wait_for(&mut stats, "a read-only failure", |s| {
        s.failed_attempts >= before + 2
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not writable"))
    })
    .await;
    assert_eq!(read_only.pending, 1);

    tmpfs.remount("rw");
    wait_for(&mut stats, "the upload", |s| s.uploaded_jobs == 1).await;
    uploader.shutdown().await;
    assert_eq!(
        std::fs::read(target.join("2026/05/01/full.wav")).unwrap(),
        wav
    );
    drop(tmpfs);
    std::fs::remove_dir_all(dir).unwrap();
}

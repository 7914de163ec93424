//! Records in batches: the fetched records of every assigned partition are forwarded to one
//! queue of ours and taken from it many at a time (`rd_kafka_consume_batch_queue`).
//!
//! rdkafka's `BaseConsumer::poll` returns one record per call, and each call costs three
//! clock reads, a queue lock, an event and an `Arc` allocation: about a quarter of the
//! service's CPU against a real broker. Batches pay that once per batch. Only records move:
//! rebalances, commit results, statistics and client errors stay on the consumer queue,
//! which `BaseConsumer::poll` keeps serving through the context's callbacks, so the drain and
//! commit on revoke are unchanged. (Taking batches from the consumer queue itself would not
//! do: `rd_kafka_consume_batch_queue` serves a rebalance by dropping the assignment.)
//!
//! Records of a partition revoked or sought after they were fetched carry an outdated
//! version, and librdkafka discards them in the batch call, as `poll` does.

use std::ffi::{CStr, CString, c_void};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::TopicPartitionList;

/// The queue the fetched records of the routed partitions go to.
pub struct RecordQueue {
    q: NonNull<rdsys::rd_kafka_queue_t>,
    rk: NonNull<rdsys::rd_kafka_t>,
}

// SAFETY: librdkafka queues and client handles are internally locked and may be used from
// any thread; the pointers stay valid until `drop` (the owner drops the queue before the
// client, see `Routing`).
unsafe impl Send for RecordQueue {}
unsafe impl Sync for RecordQueue {}

impl RecordQueue {
    pub fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Self> {
        let rk = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: `rk` is a live consumer handle.
        let q = NonNull::new(unsafe { rdsys::rd_kafka_queue_new(rk.as_ptr()) })?;
        Some(RecordQueue { q, rk })
    }

    /// Forwards the fetched records of these partitions to this queue. Call it before they
    /// are assigned: librdkafka keeps an application's forwarding when it starts fetching,
    /// and clears it when it stops (so every assignment routes again).
    pub fn route(&self, tpl: &TopicPartitionList) -> usize {
        let mut routed = 0;
        for e in tpl.elements() {
            let Ok(topic) = CString::new(e.topic()) else {
                continue;
            };
            // SAFETY: live handle and NUL-terminated name; the partition queue handle is
            // released at once (the forwarding lives in the partition's queue itself).
            unsafe {
                let pq = rdsys::rd_kafka_queue_get_partition(
                    self.rk.as_ptr(),
                    topic.as_ptr(),
                    e.partition(),
                );
                if pq.is_null() {
                    continue;
                }
                rdsys::rd_kafka_queue_forward(pq, self.q.as_ptr());
                rdsys::rd_kafka_queue_destroy(pq);
            }
            routed += 1;
        }
        routed
    }

    /// Appends what is queued to `batch` (up to its capacity), waiting up to `wait` for the
    /// first record only.
    pub fn take(&self, batch: &mut Batch, wait: Duration) {
        batch.clear();
        let cap = batch.msgs.capacity();
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // The batch call waits until the array is full or the time is up: wait for one
        // record, then take what else is there without waiting.
        if ms > 0 {
            self.fill(batch, ms, 1);
        }
        if !batch.msgs.is_empty() || ms == 0 {
            self.fill(batch, 0, cap);
        }
    }

    fn fill(&self, batch: &mut Batch, timeout_ms: i32, want: usize) {
        let len = batch.msgs.len();
        let room = (batch.msgs.capacity() - len).min(want);
        if room == 0 {
            return;
        }
        // SAFETY: the spare capacity holds `room` pointers; librdkafka writes `n <= room`
        // message pointers there, each owned by the batch until `clear` destroys it.
        unsafe {
            let n = rdsys::rd_kafka_consume_batch_queue(
                self.q.as_ptr(),
                timeout_ms,
                batch.msgs.as_mut_ptr().add(len),
                room,
            );
            if n > 0 {
                batch.msgs.set_len(len + n as usize);
            }
        }
    }
}

impl Drop for RecordQueue {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_queue_new`, destroyed once. Partitions still
        // forwarding here keep the queue alive (disabled) until they stop fetching.
        unsafe { rdsys::rd_kafka_queue_destroy(self.q.as_ptr()) }
    }
}

/// Where the rebalance callback routes newly assigned partitions, and whom the consumer
/// queue wakes: set while the consumer loop runs, cleared (by dropping the guard from
/// `install`) before the queue is destroyed, which must happen before the client is.
#[derive(Default)]
pub struct Routing(Mutex<Option<Arc<RecordQueue>>>);

impl Routing {
    pub fn install(&self, q: Arc<RecordQueue>) -> RoutingGuard<'_> {
        if let Ok(mut r) = self.0.lock() {
            *r = Some(q);
        }
        RoutingGuard(self)
    }

    /// Routes `tpl` to the installed queue, if any; otherwise their records stay on the
    /// consumer queue, where `BaseConsumer::poll` returns them.
    pub fn route(&self, tpl: &TopicPartitionList) {
        if let Ok(r) = self.0.lock()
            && let Some(q) = r.as_ref()
        {
            q.route(tpl);
        }
    }

    /// Ends a wait for records: the consumer queue has an event (a rebalance, a commit
    /// result) for `BaseConsumer::poll`. Called by librdkafka, possibly under its own
    /// locks: never blocks (a missed wake-up only delays the event to the wait's end).
    pub fn wake(&self) {
        if let Ok(r) = self.0.try_lock()
            && let Some(q) = r.as_ref()
        {
            // SAFETY: the queue is alive while installed.
            unsafe { rdsys::rd_kafka_queue_yield(q.q.as_ptr()) }
        }
    }
}

pub struct RoutingGuard<'a>(&'a Routing);

impl Drop for RoutingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.0.lock() {
            *r = None;
        }
    }
}

/// Records taken from a `RecordQueue`, owned until the next `take` or `clear`.
pub struct Batch {
    msgs: Vec<*mut rdsys::rd_kafka_message_t>,
}

// SAFETY: the messages are owned by the batch and librdkafka lets any thread destroy them.
unsafe impl Send for Batch {}

impl Batch {
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            msgs: Vec::with_capacity(n.max(1)),
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Record<'_>> {
        let p = *self.msgs.get(i)?;
        // SAFETY: non-null message owned by the batch, alive as long as the borrow.
        Some(unsafe { Record::from_raw(p) })
    }

    pub fn clear(&mut self) {
        for p in self.msgs.drain(..) {
            // SAFETY: each pointer came from `rd_kafka_consume_batch_queue`, destroyed once.
            unsafe { rdsys::rd_kafka_message_destroy(p) }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One consumed record (or a per-partition consumer error), borrowed from its message.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    m: &'a rdsys::rd_kafka_message_t,
}

impl<'a> Record<'a> {
    /// # Safety
    /// `p` must point to a live `rd_kafka_message_t` that outlives `'a`.
    unsafe fn from_raw(p: *const rdsys::rd_kafka_message_t) -> Self {
        Record {
            // SAFETY: per the contract above.
            m: unsafe { &*p },
        }
    }

    /// The same view of a record `BaseConsumer::poll` returned.
    pub fn of(m: &'a BorrowedMessage<'a>) -> Self {
        // SAFETY: the message lives as long as the borrow of `m`.
        unsafe { Self::from_raw(m.ptr()) }
    }

    /// A consumer error for the partition (the record then holds no data).
    pub fn error(&self) -> Option<RDKafkaErrorCode> {
        let e = self.m.err;
        (e != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| e.into())
    }

    /// The topic name as bytes, without the UTF-8 check `topic` does.
    pub fn topic_bytes(&self) -> &'a [u8] {
        if self.m.rkt.is_null() {
            return b"";
        }
        // SAFETY: the message holds a reference to its topic, whose name is a C string.
        unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.m.rkt)).to_bytes() }
    }

    pub fn topic(&self) -> &'a str {
        std::str::from_utf8(self.topic_bytes()).unwrap_or("")
    }

    pub fn partition(&self) -> i32 {
        self.m.partition
    }

    pub fn offset(&self) -> i64 {
        self.m.offset
    }

    pub fn payload(&self) -> &'a [u8] {
        bytes(self.m.payload, self.m.len).unwrap_or(&[])
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        bytes(self.m.key, self.m.key_len)
    }

    /// The record's timestamp in ms (create or log-append time), as rdkafka's
    /// `Timestamp::to_millis`.
    pub fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: live message; librdkafka writes the type into `kind`.
        let t = unsafe { rdsys::rd_kafka_message_timestamp(self.m, &mut kind) };
        (t != -1 && kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
            .then_some(t)
    }
}

fn bytes<'a>(p: *mut c_void, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: librdkafka's payload and key pointers address `len` bytes owned by the
        // message, which the caller's lifetime keeps alive.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

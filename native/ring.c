// The receive thread: reads a socket into a bounded ring in memory, so that JavaScript busy
// with a garbage collection, the compiler or a slow write no longer turns into kernel drops.
//
// The thread blocks in poll() on the socket and an eventfd, reads with recvmmsg (GRO buffers
// split as the direct path splits them), copies each datagram into a byte arena and its
// record (length, sender, kernel time, arrival) into a record ring, and wakes the loop with
// uv_async_send. On the loop, JS takes the records in batches through the same onBatch as the
// direct path, the arena as their buffer. The ring is bounded (ARENA bytes, RECS records):
// full, the thread stops reading until JS frees room, and the kernel's receive buffer holds
// what comes meanwhile (past it, the kernel drops and counts). Nothing read is ever dropped:
// the times the ring filled are counted. Pause and read limits stop the thread's reading as
// they stop the poll's.
#include "udpkit.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#define ARENA (8u << 20) /* bytes of payload held for JS: 40 ms of 1 KB datagrams at 200k/s */
#define RECS (1u << 15)  /* datagrams held for JS (88 bytes of record each) */
#define ROUNDS 16         /* batches handed to JS per wake-up before the loop gets a turn */
#define GATHER_NS 500000  /* how long the thread lets datagrams gather while JS is behind */

struct ring {
  sock_t *s;
  int fd;
  int wake;          /* eventfd: stop, room freed, resumed */
  pthread_t thread;
  uv_async_t *async; /* wakes the loop */
  napi_ref arena_ref;
  unsigned char *arena;
  rec_t *recs;
  uint64_t *ends; /* each record's end in the arena, as a position (they only grow) */
  /* Records [tail, head) and bytes [dtail, dhead) are JS's to take: positions only grow. */
  _Atomic uint64_t head, tail, dhead, dtail;
  /* the loop's own: handed to JS up to next, a batch's callback running (depth),
     closed by JS in one (orphaned: take's caller frees the ring) */
  uint64_t next;
  int depth, orphaned, stopping;
  int realtime;
  atomic_int stop, paused, want_room, error, done, abandon;
  _Atomic int64_t budget; /* messages still to read; -1: no limit */
  _Atomic uint64_t fulls; /* times the ring was full and the thread waited */
  _Atomic uint64_t gro_reads;
  /* the thread's own */
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addrs[BATCH];
  unsigned char *ctrl;
  int ctrl_len;
  unsigned char *scratch;
};

static void wake_thread(ring_t *r) {
  uint64_t one = 1;
  ssize_t w = write(r->wake, &one, sizeof one);
  (void)w;
}

/* Waits on the eventfd alone (paused, limited, or no room): returns when something changed. */
static void wait_wake(ring_t *r) {
  struct pollfd p = {r->wake, POLLIN, 0};
  if (poll(&p, 1, -1) > 0) {
    uint64_t v;
    ssize_t rd = read(r->wake, &v, sizeof v);
    (void)rd;
  }
}

/* Room for one more datagram of `len` bytes: its position in the arena, or UINT64_MAX. */
static uint64_t room(ring_t *r, uint64_t head, uint64_t dhead, uint32_t len) {
  if (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= RECS) return UINT64_MAX;
  uint64_t pos = dhead;
  // A datagram is never split at the arena's end: it starts again at its beginning.
  if (pos % ARENA + len > ARENA) pos += ARENA - pos % ARENA;
  if (pos + len - atomic_load_explicit(&r->dtail, memory_order_acquire) > ARENA) return UINT64_MAX;
  return pos;
}

static void *thread_main(void *arg) {
  ring_t *r = arg;
  // Where allowed (root, CAP_SYS_NICE, an RLIMIT_RTPRIO), the lowest real-time priority: on
  // a machine whose cores are all busy, the thread then reads when data comes, rather than
  // after the scheduler's period (14 ms measured, with 2 cores busy: enough for the kernel's
  // buffer to overflow at 200k/s). It never spins: it blocks in poll() or sleeps between reads.
  struct sched_param sp = {.sched_priority = 1};
  if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) r->realtime = 1;
  uint64_t head = atomic_load(&r->head), dhead = atomic_load(&r->dhead);
  uint64_t last_wake = 0;
  while (!atomic_load(&r->stop)) {
    int64_t budget = atomic_load(&r->budget);
    if (atomic_load(&r->paused) || budget == 0) {
      wait_wake(r);
      continue;
    }
    struct pollfd p[2] = {{r->fd, POLLIN, 0}, {r->wake, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) continue;
    if (p[1].revents & POLLIN) {
      uint64_t v;
      ssize_t rd = read(r->wake, &v, sizeof v);
      (void)rd;
      continue; /* look at stop, pause and the limit again */
    }
    if (!(p[0].revents & (POLLIN | POLLERR)) || atomic_load(&r->stop)) continue;
    int want = budget >= 0 && budget < BATCH ? (int)budget : BATCH;
    prepare_reads(r->msgs, r->addrs, r->ctrl, r->ctrl_len, want);
    int n = recvmmsg(r->fd, r->msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        atomic_store(&r->error, errno);
        uv_async_send(r->async);
      }
      continue;
    }
    // Less what was read, never below 0 (a limit set meanwhile is not turned into none).
    for (int64_t b = atomic_load(&r->budget); b > 0;) {
      int64_t left = b > n ? b - n : 0;
      if (atomic_compare_exchange_weak(&r->budget, &b, left)) break;
    }
    double fallback = now_ms();
    for (int i = 0; i < n; i++) {
      rec_t segs[GRO_SEGS];
      uint32_t k = message_records(&r->msgs[i], fallback, 0, segs, GRO_SEGS);
      if (k > 1) atomic_fetch_add(&r->gro_reads, 1);
      const unsigned char *src = r->scratch + (size_t)i * MAX_DGRAM;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t l = segs[j].len;
        uint64_t pos;
        // Full: what was read so far goes to JS, and this thread waits for room (closing, JS
        // keeps taking until the thread is done; a socket collected unclosed abandons it).
        while ((pos = room(r, head, dhead, l)) == UINT64_MAX && !atomic_load(&r->abandon)) {
          atomic_store_explicit(&r->head, head, memory_order_release);
          atomic_store_explicit(&r->dhead, dhead, memory_order_release);
          // want_room is stored before room() looks at the tail again, and take() stores the
          // tail before it looks at want_room, a full fence between each pair: one of the two
          // sees the other's store, so either this thread sees the room or take() wakes it
          // (without the fences a store may pass a later load: on ARM, and even on x86).
          atomic_store_explicit(&r->want_room, 1, memory_order_relaxed);
          atomic_thread_fence(memory_order_seq_cst);
          atomic_fetch_add(&r->fulls, 1);
          uv_async_send(r->async);
          if (room(r, head, dhead, l) == UINT64_MAX && !atomic_load(&r->abandon)) wait_wake(r);
        }
        if (pos == UINT64_MAX) {
          i = n;
          break;
        }
        memcpy(r->arena + pos % ARENA, src + segs[j].off, l);
        r->recs[head % RECS] = segs[j];
        r->recs[head % RECS].off = (uint32_t)(pos % ARENA);
        r->ends[head % RECS] = pos + l;
        head++;
        dhead = pos + l;
      }
    }
    atomic_store_explicit(&r->dhead, dhead, memory_order_release);
    atomic_store_explicit(&r->head, head, memory_order_release);
    uv_async_send(r->async);
    // Under load (the last wake-up was less than a millisecond ago) a wake-up for every few
    // datagrams costs more than they do, and on a shared core it takes JavaScript's time (and
    // the loop's, woken as often): let a batch gather in the kernel's buffer for half a
    // millisecond, then take it whole. Receive times stay the kernel's.
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t at = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
    if (n < want && at - last_wake < 1000000u) {
      struct timespec pause = {0, GATHER_NS};
      nanosleep(&pause, NULL);
    }
    last_wake = at;
  }
  atomic_store(&r->done, 1);
  return NULL;
}

/*
 * Hands JS what the ring holds, up to `rounds` batches: 1 when some is left, 0 when none, -1
 * when JS closed the socket during a batch (the ring is then the caller's to free). `next`
 * runs ahead of `tail`: a batch is JS's from before its callback (a close inside it hands over
 * the rest, after it), and its room goes back to the thread after.
 */
static int take(ring_t *r, napi_env env, int rounds) {
  sock_t *s = r->s;
  for (int round = 0; round < rounds; round++) {
    if (r->orphaned || s->closed) return r->orphaned ? -1 : 0;
    // Paused: what the ring holds waits too (a close hands it over all the same).
    if (!(s->events & UV_READABLE) && !r->stopping) return 0;
    int e = atomic_exchange(&r->error, 0);
    if (e) deliver_error(s, env, e);
    uint64_t start = r->next;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (head == start) return 0;
    uint32_t n = head - start > MAX_ROWS ? MAX_ROWS : (uint32_t)(head - start);
    env_t *en = env_state(env);
    if (!en->recs && !(en->recs = malloc(sizeof(rec_t) * MAX_ROWS))) return 0;
    // Copied out of the ring (it wraps): the records are JS's until the callback returns.
    rec_t *recs = en->recs;
    for (uint32_t i = 0; i < n; i++) recs[i] = r->recs[(start + i) % RECS];
    // The arena up to the last one's end is free once JS is done (a skipped end with it).
    uint64_t end = r->ends[(start + n - 1) % RECS];
    r->next = start + n;
    napi_value arena;
    napi_get_reference_value(env, r->arena_ref, &arena);
    r->depth++;
    deliver_recs(s, env, recs, n, arena);
    r->depth--;
    surface_exception(env);
    if (r->orphaned) return -1;
    atomic_store_explicit(&r->dtail, end, memory_order_release);
    atomic_store_explicit(&r->tail, start + n, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst); /* the other half of the thread's wait for room */
    if (atomic_exchange_explicit(&r->want_room, 0, memory_order_relaxed)) wake_thread(r);
  }
  return atomic_load(&r->head) != r->next;
}

static void ring_free(ring_t *r, napi_env env);

static void on_async(uv_async_t *h) {
  ring_t *r = h->data;
  if (!r) return; /* stopped: the last wake-up of a closed socket */
  sock_t *s = r->s;
  if (s->closed || !s->on_batch) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  // More than ROUNDS batches waiting: the loop gets a turn (timers, writes), then the rest.
  int left = take(r, env, ROUNDS);
  if (left > 0) uv_async_send(r->async);
  else if (left < 0) ring_free(r, env); /* closed by JS during the batch: freed now it is over */
  napi_close_handle_scope(env, scope);
}

static void async_close_cb(uv_handle_t *h) { free(h); }

static void ring_free(ring_t *r, napi_env env) {
  if (r->arena_ref) napi_delete_reference(env, r->arena_ref);
  if (r->wake >= 0) close(r->wake);
  free(r->recs);
  free(r->ends);
  free(r->ctrl);
  free(r->scratch);
  free(r);
}

/*
 * receiveThread(sock) -> true once a thread reads the socket, after startReceiving: from then
 * on the poll no longer reads (it still waits for room to send).
 */
napi_value js_receive_thread(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (s->ring) {
    CALL(env, napi_get_boolean(env, true, &out));
    return out;
  }
  ring_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "calloc");
  r->s = s;
  r->fd = s->fd;
  r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  r->ctrl_len = CTRL_LEN_METADATA; /* metadata may be asked for later */
  r->recs = malloc(sizeof(rec_t) * RECS);
  r->ends = malloc(sizeof(uint64_t) * RECS);
  r->ctrl = calloc(BATCH, CTRL_LEN_METADATA);
  r->scratch = malloc((size_t)BATCH * MAX_DGRAM);
  atomic_init(&r->budget, s->budget);
  napi_value arena;
  void *p = NULL;
  if (r->wake < 0) {
    int e = errno;
    ring_free(r, env);
    return throw_errno(env, e, "eventfd");
  }
  if (!r->recs || !r->ends || !r->ctrl || !r->scratch ||
      napi_create_buffer(env, ARENA, &p, &arena) != napi_ok ||
      napi_create_reference(env, arena, 1, &r->arena_ref) != napi_ok) {
    ring_free(r, env);
    return throw_errno(env, ENOMEM, "receive thread");
  }
  r->arena = p;
  for (int i = 0; i < BATCH; i++) {
    r->iov[i].iov_base = r->scratch + (size_t)i * MAX_DGRAM;
    r->iov[i].iov_len = MAX_DGRAM;
    memset(&r->msgs[i].msg_hdr, 0, sizeof r->msgs[i].msg_hdr);
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->addrs[i];
  }
  uv_loop_t *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  r->async = malloc(sizeof *r->async);
  if (!r->async || uv_async_init(loop, r->async, on_async) != 0) {
    free(r->async);
    ring_free(r, env);
    return throw_errno(env, EIO, "uv_async_init");
  }
  r->async->data = r;
  atomic_store(&r->paused, !(s->events & UV_READABLE));
  if (!(s->events & UV_READABLE)) uv_unref((uv_handle_t *)r->async);
  int e = pthread_create(&r->thread, NULL, thread_main, r);
  if (e != 0) {
    uv_close((uv_handle_t *)r->async, async_close_cb);
    ring_free(r, env);
    return throw_errno(env, e, "pthread_create");
  }
  s->ring = r;
  update_poll(s);
  CALL(env, napi_get_boolean(env, true, &out));
  return out;
}

void ring_pause(sock_t *s, int paused) {
  ring_t *r = s->ring;
  if (!r) return;
  atomic_store(&r->paused, paused);
  // Paused, it keeps the process alive no more than a stopped poll would.
  if (paused) uv_unref((uv_handle_t *)r->async);
  else {
    uv_ref((uv_handle_t *)r->async);
    uv_async_send(r->async); /* what waited in the ring while paused */
  }
  wake_thread(r);
}

void ring_limit(sock_t *s, int64_t n, int more) {
  ring_t *r = s->ring;
  if (!r) return;
  if (!more) {
    // Datagrams already in the ring count as read: the limit is on what is handed over.
    int64_t held = (int64_t)(atomic_load(&r->head) - r->next);
    atomic_store(&r->budget, n < 0 ? -1 : n > held ? n - held : 0);
  }
  else if (n > 0) {
    int64_t b = atomic_load(&r->budget);
    while (b >= 0 && !atomic_compare_exchange_weak(&r->budget, &b, b + n)) {
    }
  }
  wake_thread(r);
}

double ring_gro_reads(sock_t *s) { return s->ring ? (double)atomic_load(&s->ring->gro_reads) : 0; }

void ring_stop(sock_t *s, napi_env env, int hand_over) {
  ring_t *r = s->ring;
  if (!r || r->stopping) return; /* a close inside the hand-over of a close */
  r->stopping = 1;
  atomic_store(&r->abandon, !hand_over || !s->on_batch || s->closed);
  atomic_store(&r->stop, 1);
  wake_thread(r);
  if (!atomic_load(&r->abandon)) {
    // The thread may be waiting for room to store what it last read: take until it is done.
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    while (!atomic_load(&r->done)) {
      take(r, env, ROUNDS);
      wake_thread(r);
      struct timespec pause = {0, 100000};
      nanosleep(&pause, NULL);
    }
    napi_close_handle_scope(env, scope);
  }
  pthread_join(r->thread, NULL);
  s->gro_reads += (double)atomic_load(&r->gro_reads);
  // What the thread read is handed over before the socket goes: received, so counted.
  if (hand_over && s->on_batch && !s->closed) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    while (take(r, env, ROUNDS) > 0) {
    }
    napi_close_handle_scope(env, scope);
  }
  s->ring = NULL;
  r->async->data = NULL;
  // From a finalizer (no hand-over), maybe at a worker's teardown: no callback of this file.
  uv_close((uv_handle_t *)r->async, hand_over ? async_close_cb : NULL);
  // Closed from inside a batch's callback: the take() running it frees the ring after.
  if (r->depth > 0) r->orphaned = 1;
  else ring_free(r, env);
}

/* ringStats(sock) -> [datagrams waiting in the ring, times it was full], or undefined */
napi_value js_ring_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  ring_t *r = s->ring;
  if (!r) {
    CALL(env, napi_get_undefined(env, &out));
    return out;
  }
  CALL(env, napi_create_array_with_length(env, 2, &out));
  napi_create_double(env, (double)(atomic_load(&r->head) - atomic_load(&r->tail)), &v);
  napi_set_element(env, out, 0, v);
  napi_create_double(env, (double)atomic_load(&r->fulls), &v);
  napi_set_element(env, out, 1, v);
  return out;
}

// Shared by the addon's files: udpkit.c (sockets, batches, sends, timer) and ring.c (the
// receive thread).
#ifndef UDPKIT_H
#define UDPKIT_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 64
#define MAX_DGRAM 65536
/*
 * Control room per datagram: a timestamp takes 32 bytes; with metadata, an IPv6 socket
 * receiving IPv4 gets both pktinfos (40 + 32) and a TTL (24) besides: 128. Room for the
 * timestamp alone unless metadata is asked for (a thousand sockets, a proxy's flows, each
 * keep one area), and twice what metadata needs when it is, so that nothing is ever cut
 * (MSG_CTRUNC) by one more option.
 */
#define CTRL_LEN 64
#define CTRL_LEN_METADATA 256
#define MAX_ROUNDS 8 /* recvmmsg calls per readable event before yielding to the loop */
/* per datagram: length, sender index, time (f64 as two words), arrival index, TTL, offset in
   the slab, spare: eight words, so the time stays 8-byte aligned */
#define META_WORDS 8
/* Datagrams udpkit puts in one GSO send (UDP_MAX_SEGMENTS was 64 before Linux 6.x). */
#define MAX_SEGS 64
/* A GRO buffer read may hold what one GSO send carried: up to UDP_MAX_SEGMENTS, 128 since
   Linux 6.x (a loopback sender's buffer arrives whole). */
#define GRO_SEGS 128
#define MAX_ROWS (BATCH * GRO_SEGS)
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
/* The most payload one GSO send may carry (IPv4's limit; IPv6's is larger). */
#define GSO_MAX_BYTES 65507
#define NONE 0xffffffffu

typedef struct ring ring_t;

/* What the kernel said of one datagram besides its payload. */
typedef struct {
  double ms;           /* receive time, ms since the epoch */
  int ttl;             /* TTL or hop limit; -1 when not said */
  int family;          /* of the pktinfo: AF_INET, AF_INET6, or 0 when none came */
  unsigned ifindex;
  unsigned char dst[16];  /* the header's destination */
  unsigned char spec[4];  /* IPv4: the local address to answer from (ipi_spec_dst) */
  int gso;             /* UDP_GRO: the size of each datagram the buffer holds (the last may be shorter); 0: one datagram */
} arrival_t;

/*
 * One datagram as handed to JS: where its bytes are in the buffer JS gets, its length, its
 * sender, and what the kernel said of it. The direct path makes these from a recvmmsg batch,
 * the receive thread (ring.c) as it reads.
 */
typedef struct {
  uint32_t off;
  uint32_t len;
  socklen_t namelen;
  struct sockaddr_in6 from; /* room for either family's address */
  arrival_t a;
} rec_t;

typedef struct {
  int fd;
  int family;
  int closed;
  int events;
  int metadata;     /* asked the kernel for each datagram's destination, interface and TTL */
  int gso;          /* sends equal-size datagrams as one UDP_SEGMENT buffer; 0 once refused */
  int gro;          /* UDP_GRO is on: a buffer read may hold many datagrams */
  double gso_sends; /* buffers sent with UDP_SEGMENT */
  double gro_reads; /* buffers read that held more than one datagram */
  /* Interface names by index, kept for a second: if_indextoname costs a socket and an ioctl. */
  struct {
    unsigned index;
    char name[IF_NAMESIZE];
    time_t at;
  } ifnames[4];
  unsigned next_ifname;
  uv_poll_t *poll;
  uv_timer_t *timer;
  int coalesce_ms;  /* 0: read as soon as readable; else batch up arrivals under load */
  int in_timer;     /* reading on the coalescing timer, not on readability */
  uint64_t last_wake;
  int64_t budget;   /* datagrams still to read before reading stops; -1: no limit */
  napi_env env;
  napi_async_context async_ctx;
  napi_ref on_batch;
  napi_ref on_writable;
  /* The receive slab and metadata live in JS Buffers made once: no allocation per batch. */
  napi_ref slab_ref;
  napi_ref meta_ref;
  uint32_t *meta;
  unsigned char *slab;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addrs[BATCH];
  unsigned char *ctrl; /* BATCH areas of ctrl_len bytes */
  int ctrl_len;
  ring_t *ring;        /* the receive thread, when it reads instead of the poll (ring.c) */
} sock_t;

/*
 * What one JS environment (the main thread, or a worker thread) shares among its sockets: the
 * receive slab and metadata rows, and the precise timer. Each environment has its own, so
 * sockets in worker threads never touch another thread's memory.
 */
typedef struct {
  napi_ref slab_ref;
  napi_ref meta_ref;
  unsigned char *slab;
  uint32_t *meta;
  /* the precise timer (see js_timer_init) */
  int timer_fd;
  uv_poll_t *timer_poll;
  napi_env env;
  napi_ref on_fire;
  napi_async_context timer_ctx;
  int armed;
  void *plan; /* the send plan (send_plan_t), made on the first batch send */
  rec_t *recs; /* MAX_ROWS records of the batch being handed over */
  int delivering; /* batches whose callback is running (more than one: one inside another) */
} env_t;


#define CALL(env, expr)                                                                            \
  do {                                                                                             \
    if ((expr) != napi_ok) {                                                                       \
      napi_throw_error((env), "UDP_ERR_NATIVE", "N-API call failed: " #expr);                      \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

env_t *env_state(napi_env env);
const char *errno_code(int e);
napi_value throw_errno(napi_env env, int e, const char *syscall);
sock_t *get_sock(napi_env env, napi_value v);
int update_poll(sock_t *s);
void parse_cmsgs(struct msghdr *m, double fallback, arrival_t *a);
/* Readies n messages of a recvmmsg: their address room, control areas (ctrl_len each), flags. */
void prepare_reads(struct mmsghdr *msgs, struct sockaddr_storage *addrs, unsigned char *ctrl, int ctrl_len, int n);
/* The wall clock, ms since the epoch: a datagram's time when the kernel gave none. */
double now_ms(void);
/*
 * The records of one message read (at most max): one datagram, or a GRO buffer split in order,
 * each with its own length and offset base + its place in the buffer, sharing the sender,
 * time and arrival. Returns how many.
 */
uint32_t message_records(struct mmsghdr *m, double fallback, uint32_t base, rec_t *out, uint32_t max);
/* Hands recs[0..n) to JS (onBatch) with `data` as the buffer they point into: 0, or -1. */
int deliver_recs(sock_t *s, napi_env env, const rec_t *recs, uint32_t n, napi_value data);
void deliver_error(sock_t *s, napi_env env, int e);
/* Rethrows as fatal what a callback into JS left pending: it must surface, not vanish. */
void surface_exception(napi_env env);

/* ring.c: the receive thread */
napi_value js_receive_thread(napi_env env, napi_callback_info info);
napi_value js_ring_stats(napi_env env, napi_callback_info info);
/* Stops the thread and frees the ring, first handing JS what it read (hand_over): before the socket closes. */
void ring_stop(sock_t *s, napi_env env, int hand_over);
/* Pauses or resumes the thread's reading. */
void ring_pause(sock_t *s, int paused);
/* A read limit, as setReadLimit's: n more messages (-1: none), or n added with `more`. */
void ring_limit(sock_t *s, int64_t n, int more);
/* GRO buffers the thread read. */
double ring_gro_reads(sock_t *s);

#endif

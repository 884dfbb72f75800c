// udpkit's optional native socket: recvmmsg/sendmmsg batching under libuv's poll.
//
// Node 20's dgram makes one syscall and one JS callback per datagram. This addon reads up to
// BATCH datagrams per recvmmsg call and hands JS one callback per batch: the payloads packed in
// one Buffer, a metadata Buffer (length, sender index, kernel receive time per datagram) and
// the distinct senders of the batch. Sends go out in batches with sendmmsg. Everything else
// (state, queue, counters, errors) stays in TypeScript, which falls back to node:dgram when
// this file cannot be built or loaded.
#include "udpkit.h"

env_t *env_state(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

/* The errno's name as Node spells it (EMFILE, ECONNREFUSED, ...), from libuv's table. */
const char *errno_code(int e) {
  const char *name = uv_err_name(uv_translate_sys_error(e));
  return name ? name : "EIO";
}

/* Throws an Error shaped like Node's system errors: code, errno, syscall. */
napi_value throw_errno(napi_env env, int e, const char *syscall) {
  napi_value msg, err, code, sc, num;
  char text[160];
  snprintf(text, sizeof text, "%s %s (%s)", syscall, errno_code(e), strerror(e));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_create_int32(env, -e, &num);
  napi_set_named_property(env, err, "code", code);
  napi_set_named_property(env, err, "syscall", sc);
  napi_set_named_property(env, err, "errno", num);
  napi_throw(env, err);
  return NULL;
}

sock_t *get_sock(napi_env env, napi_value v) {
  sock_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, "UDP_ERR_NATIVE", "not a native socket");
    return NULL;
  }
  if (s->closed) {
    napi_throw_error(env, "UDP_ERR_CLOSED", "the socket is closed");
    return NULL;
  }
  return s;
}

/* Parses an IP literal and port into a sockaddr of the socket's family. */
static int make_addr(sock_t *s, const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (s->family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    // A scoped address (fe80::1%eth0, or %2): the zone names the interface.
    char plain[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    snprintf(plain, sizeof plain, "%s", ip);
    char *zone = strchr(plain, '%');
    if (zone) {
      *zone++ = 0;
      char *end;
      unsigned long n = strtoul(zone, &end, 10);
      a->sin6_scope_id = *zone && !*end ? (uint32_t)n : if_nametoindex(zone);
      if (a->sin6_scope_id == 0) return -1;
    }
    if (inet_pton(AF_INET6, plain, &a->sin6_addr) != 1) return -1;
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
  }
  return 0;
}

/*
 * An interface argument: a name (null or undefined: none, 0). Returns its index, 0 for none,
 * or -1 with an ENODEV error thrown.
 */
static int ifname_arg(napi_env env, napi_value value) {
  napi_valuetype t;
  char name[IF_NAMESIZE + 1];
  if (napi_typeof(env, value, &t) != napi_ok) return -1;
  if (t != napi_string) return 0;
  if (napi_get_value_string_utf8(env, value, name, sizeof name, NULL) != napi_ok) return -1;
  unsigned index = if_nametoindex(name);
  if (index == 0) {
    throw_errno(env, ENODEV, "if_nametoindex");
    return -1;
  }
  return (int)index;
}

static void poll_close_cb(uv_handle_t *h) { free(h); }

/* UDPKIT_GSO=0 turns GSO and GRO off, as on a kernel without them (for tests and comparisons). */
static int offload_allowed(void) {
  const char *v = getenv("UDPKIT_GSO");
  return !(v && strcmp(v, "0") == 0);
}

static void sock_free(sock_t *s) {
  free(s->ctrl);
  free(s);
}

static void finalize_sock(napi_env env, void *data, void *hint) {
  (void)hint;
  sock_t *s = data;
  if (!s->closed) {
    // Collected unclosed, possibly as its environment (a worker thread) goes: no close
    // callback in this file may run then (the addon can be unloaded before the loop runs it),
    // so the handles are closed without one and their few bytes left behind.
    ring_stop(s, env, 0);
    s->closed = 1;
    if (s->poll) {
      uv_poll_stop(s->poll);
      uv_close((uv_handle_t *)s->poll, NULL);
      s->poll = NULL;
    }
    if (s->timer) {
      uv_timer_stop(s->timer);
      uv_close((uv_handle_t *)s->timer, NULL);
      s->timer = NULL;
    }
    close(s->fd);
  }
  if (s->on_batch) napi_delete_reference(env, s->on_batch);
  if (s->on_writable) napi_delete_reference(env, s->on_writable);
  if (s->slab_ref) napi_delete_reference(env, s->slab_ref);
  if (s->meta_ref) napi_delete_reference(env, s->meta_ref);
  if (s->async_ctx) napi_async_destroy(env, s->async_ctx);
  sock_free(s);
}

/* open(family 4|6, reuseAddr, ipv6Only[, reusePort]) -> external */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fam;
  bool reuse, v6only, reuse_port = false;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CALL(env, napi_get_value_int32(env, argv[0], &fam));
  CALL(env, napi_get_value_bool(env, argv[1], &reuse));
  CALL(env, napi_get_value_bool(env, argv[2], &v6only));
  if (argc > 3) CALL(env, napi_get_value_bool(env, argv[3], &reuse_port));
  int af = fam == 6 ? AF_INET6 : AF_INET;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1, v6 = v6only ? 1 : 0;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // SO_REUSEPORT: several sockets (one per worker thread) bound to one port; the kernel
  // spreads senders over them by a hash of the addresses, so one sender stays on one socket.
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "setsockopt SO_REUSEPORT");
  }
  if (af == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6);
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, ENOMEM, "calloc");
  }
  s->fd = fd;
  s->family = af;
  s->budget = -1;
  s->ctrl_len = CTRL_LEN;
  s->ctrl = calloc(BATCH, CTRL_LEN);
  if (!s->ctrl) {
    close(fd);
    free(s);
    return throw_errno(env, ENOMEM, "calloc");
  }
  s->env = env;
  napi_value ext;
  CALL(env, napi_create_external(env, s, finalize_sock, NULL, &ext));
  return ext;
}

/* bind(sock, ip, port) */
static napi_value js_bind(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char ip[64];
  int32_t port;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, NULL));
  CALL(env, napi_get_value_int32(env, argv[2], &port));
  struct sockaddr_storage ss;
  socklen_t len;
  if (make_addr(s, ip, port, &ss, &len) < 0) return throw_errno(env, EINVAL, "bind");
  if (bind(s->fd, (struct sockaddr *)&ss, len) < 0) return throw_errno(env, errno, "bind");
  return NULL;
}

/* connect(sock, ip, port) */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char ip[64];
  int32_t port;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, NULL));
  CALL(env, napi_get_value_int32(env, argv[2], &port));
  struct sockaddr_storage ss;
  socklen_t len;
  if (make_addr(s, ip, port, &ss, &len) < 0) return throw_errno(env, EINVAL, "connect");
  if (connect(s->fd, (struct sockaddr *)&ss, len) < 0) return throw_errno(env, errno, "connect");
  return NULL;
}

static napi_value addr_to_js(napi_env env, const struct sockaddr_storage *ss, napi_value *port_out) {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = "";
  int port = 0;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, INET6_ADDRSTRLEN);
    port = ntohs(a->sin6_port);
    // As node:dgram writes them: a link-local sender with its interface's name.
    char ifname[IF_NAMESIZE];
    if (a->sin6_scope_id != 0 && if_indextoname(a->sin6_scope_id, ifname)) {
      size_t used = strlen(text);
      snprintf(text + used, sizeof text - used, "%%%s", ifname);
    }
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  }
  napi_value str;
  napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &str);
  napi_create_int32(env, port, port_out);
  return str;
}

/* localAddress(sock) -> [ip, port] */
static napi_value js_local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], arr, ip, port;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0) return throw_errno(env, errno, "getsockname");
  ip = addr_to_js(env, &ss, &port);
  CALL(env, napi_create_array_with_length(env, 2, &arr));
  napi_set_element(env, arr, 0, ip);
  napi_set_element(env, arr, 1, port);
  return arr;
}

/*
 * setOption(sock, name, value): the integer socket options node:dgram sets with setBroadcast,
 * setTTL, setMulticastTTL and setMulticastLoopback, by name, for the socket's family:
 * "broadcast" (SO_BROADCAST), "ttl" (IP_TTL / IPV6_UNICAST_HOPS), "multicastTtl"
 * (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS), "multicastLoop" (IP_MULTICAST_LOOP /
 * IPV6_MULTICAST_LOOP).
 */
static napi_value js_set_option(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char name[32];
  int32_t value;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_string_utf8(env, argv[1], name, sizeof name, NULL));
  CALL(env, napi_get_value_int32(env, argv[2], &value));
  int v6 = s->family == AF_INET6;
  int level, opt;
  if (strcmp(name, "broadcast") == 0) {
    level = SOL_SOCKET;
    opt = SO_BROADCAST;
  } else if (strcmp(name, "ttl") == 0) {
    level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    opt = v6 ? IPV6_UNICAST_HOPS : IP_TTL;
  } else if (strcmp(name, "multicastTtl") == 0) {
    level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    opt = v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL;
  } else if (strcmp(name, "multicastLoop") == 0) {
    level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    opt = v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP;
  } else {
    napi_throw_error(env, "UDP_ERR_NATIVE", "unknown socket option");
    return NULL;
  }
  if (setsockopt(s->fd, level, opt, &value, sizeof value) != 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

/*
 * receiveMetadata(sock, on): ask the kernel for each datagram's destination address and
 * interface (IP_PKTINFO, IPV6_RECVPKTINFO) and its TTL or hop limit. An IPv6 socket asks for
 * both families': IPv4 arrives on it as mapped addresses.
 */
static napi_value js_receive_metadata(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool on;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &on));
  int v = on ? 1 : 0, v6 = s->family == AF_INET6;
  if (setsockopt(s->fd, IPPROTO_IP, IP_PKTINFO, &v, sizeof v) != 0 ||
      setsockopt(s->fd, IPPROTO_IP, IP_RECVTTL, &v, sizeof v) != 0) {
    if (!v6 || errno != ENOPROTOOPT) return throw_errno(env, errno, "setsockopt");
  }
  if (v6 && (setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &v, sizeof v) != 0 ||
             setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &v, sizeof v) != 0))
    return throw_errno(env, errno, "setsockopt");
  if (v && s->ctrl_len < CTRL_LEN_METADATA) {
    unsigned char *bigger = calloc(BATCH, CTRL_LEN_METADATA);
    if (!bigger) return throw_errno(env, ENOMEM, "calloc");
    free(s->ctrl);
    s->ctrl = bigger;
    s->ctrl_len = CTRL_LEN_METADATA;
  }
  s->metadata = v;
  return NULL;
}

/*
 * membership(sock, join, group, source|null, interface|null): joins (or leaves) a multicast
 * group, any-source or, with a source, source-specific, on the interface named (null: the
 * one the routing table picks). Protocol-independent MCAST_* options, so IPv4 and IPv6 are
 * one code path.
 */
static napi_value js_membership(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  bool join;
  char group[INET6_ADDRSTRLEN + 1], source[INET6_ADDRSTRLEN + 1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &join));
  CALL(env, napi_get_value_string_utf8(env, argv[2], group, sizeof group, NULL));
  napi_valuetype t;
  CALL(env, napi_typeof(env, argv[3], &t));
  int ssm = t == napi_string;
  if (ssm) CALL(env, napi_get_value_string_utf8(env, argv[3], source, sizeof source, NULL));
  int ifindex = ifname_arg(env, argv[4]);
  if (ifindex < 0) return NULL;
  int level = s->family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  int rc;
  if (ssm) {
    struct group_source_req r;
    memset(&r, 0, sizeof r);
    r.gsr_interface = (uint32_t)ifindex;
    socklen_t len;
    if (make_addr(s, group, 0, &r.gsr_group, &len) || make_addr(s, source, 0, &r.gsr_source, &len))
      return throw_errno(env, EINVAL, "setsockopt");
    rc = setsockopt(s->fd, level, join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP, &r, sizeof r);
  } else {
    struct group_req r;
    memset(&r, 0, sizeof r);
    r.gr_interface = (uint32_t)ifindex;
    socklen_t len;
    if (make_addr(s, group, 0, &r.gr_group, &len)) return throw_errno(env, EINVAL, "setsockopt");
    rc = setsockopt(s->fd, level, join ? MCAST_JOIN_GROUP : MCAST_LEAVE_GROUP, &r, sizeof r);
  }
  if (rc != 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

/* multicastInterface(sock, interface): where multicast sent from here goes out. */
static napi_value js_multicast_interface(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  int ifindex = ifname_arg(env, argv[1]);
  if (ifindex < 0) return NULL;
  int rc;
  if (s->family == AF_INET6) {
    rc = setsockopt(s->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex);
  } else {
    struct ip_mreqn m;
    memset(&m, 0, sizeof m);
    m.imr_ifindex = ifindex;
    rc = setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
  }
  if (rc != 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

/*
 * bindToDevice(sock, interface): only datagrams arriving on that interface are received, and
 * everything sent leaves through it (SO_BINDTODEVICE; unprivileged since Linux 5.7).
 */
static napi_value js_bind_to_device(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  int ifindex = ifname_arg(env, argv[1]);
  if (ifindex < 0) return NULL;
  // By index: the name of an interface could change between the lookup and this call.
  if (setsockopt(s->fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, sizeof ifindex) != 0)
    return throw_errno(env, errno, "setsockopt");
  return NULL;
}

/* bufferSize(sock, which 'r'|'s' as 0|1, bytes (0 = just read), force) -> granted */
static napi_value js_buffer_size(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  int32_t which, bytes;
  bool force;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_int32(env, argv[1], &which));
  CALL(env, napi_get_value_int32(env, argv[2], &bytes));
  CALL(env, napi_get_value_bool(env, argv[3], &force));
  int opt = which == 0 ? SO_RCVBUF : SO_SNDBUF;
  int forced = which == 0 ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
  if (bytes > 0) {
    // Root may go past net.core.rmem_max; anyone else gets what the limit allows.
    if (!force || setsockopt(s->fd, SOL_SOCKET, forced, &bytes, sizeof bytes) < 0) {
      if (setsockopt(s->fd, SOL_SOCKET, opt, &bytes, sizeof bytes) < 0) return throw_errno(env, errno, "setsockopt");
    }
  }
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(s->fd, SOL_SOCKET, opt, &got, &len) < 0) return throw_errno(env, errno, "getsockopt");
  CALL(env, napi_create_int32(env, got, &out));
  return out;
}

static void on_poll(uv_poll_t *h, int status, int events);

int update_poll(sock_t *s) {
  // With the receive thread, the thread reads: the poll only waits for room to send.
  int events = s->in_timer || s->budget == 0 || s->ring ? (s->events & ~UV_READABLE) : s->events;
  if (events == 0) {
    if (s->poll) uv_poll_stop(s->poll);
    return 0;
  }
  if (!s->poll) {
    uv_loop_t *loop;
    if (napi_get_uv_event_loop(s->env, &loop) != napi_ok) return -1;
    s->poll = malloc(sizeof *s->poll);
    if (!s->poll) return -1;
    if (uv_poll_init(loop, s->poll, s->fd) != 0) {
      free(s->poll);
      s->poll = NULL;
      return -1;
    }
    s->poll->data = s;
  }
  return uv_poll_start(s->poll, events, on_poll);
}


void parse_cmsgs(struct msghdr *m, double fallback, arrival_t *a) {
  a->ms = fallback;
  a->ttl = -1;
  a->family = 0;
  a->ifindex = 0;
  a->gso = 0;
  memset(a->dst, 0, sizeof a->dst);
  memset(a->spec, 0, sizeof a->spec);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      a->ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      // IPv4, on either family's socket: it alone has the address to answer from.
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      a->family = AF_INET;
      a->ifindex = (unsigned)pi.ipi_ifindex;
      memset(a->dst, 0, sizeof a->dst);
      memcpy(a->dst, &pi.ipi_addr, 4);
      memcpy(a->spec, &pi.ipi_spec_dst, 4);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)) continue; /* IPv4 on an IPv6 socket: IP_PKTINFO says it */
      a->family = AF_INET6;
      a->ifindex = pi.ipi6_ifindex;
      memcpy(a->dst, &pi.ipi6_addr, 16);
    } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      a->gso = v > 0 ? v : 0;
    } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
               (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      a->ttl = v;
    }
  }
}

/* An interface's name by index, from the socket's few remembered for a second; NULL if none. */
static const char *ifname_of(sock_t *s, unsigned index) {
  if (index == 0) return NULL;
  time_t now = time(NULL);
  for (unsigned i = 0; i < 4; i++) {
    if (s->ifnames[i].index == index && now - s->ifnames[i].at < 1) return s->ifnames[i].name;
  }
  unsigned slot = s->next_ifname++ % 4;
  if (!if_indextoname(index, s->ifnames[slot].name)) {
    s->ifnames[slot].index = 0;
    return NULL;
  }
  s->ifnames[slot].index = index;
  s->ifnames[slot].at = now;
  return s->ifnames[slot].name;
}

/* An address as text: IPv4 as an IPv6 socket shows it (::ffff:a.b.c.d) when mapped. */
static void addr_text(int family, const unsigned char *bytes, int mapped, char *out, size_t size) {
  if (family == AF_INET && mapped) {
    char v4[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, bytes, v4, sizeof v4);
    snprintf(out, size, "::ffff:%s", v4);
  } else {
    inet_ntop(family, bytes, out, (socklen_t)size);
  }
}

/*
 * The JS form of an arrival: [to, interface|undefined, replyFrom, replyIndex]. `to` is the
 * header's destination. replyFrom is the address a reply should leave from, and replyIndex
 * the interface it must leave through (0: as routed): IPv4's ipi_spec_dst (the receiving
 * interface's address when `to` was a broadcast or a group); IPv6's `to`, with its interface
 * when link-local, or `::` (any address) and the interface for a group.
 */
static napi_value arrival_to_js(napi_env env, sock_t *s, const arrival_t *a) {
  char to[INET6_ADDRSTRLEN + 8], from[INET6_ADDRSTRLEN + 8];
  int mapped = s->family == AF_INET6;
  unsigned reply_index = 0;
  addr_text(a->family, a->dst, mapped, to, sizeof to);
  if (a->family == AF_INET) {
    addr_text(AF_INET, a->spec, mapped, from, sizeof from);
  } else {
    const struct in6_addr *d = (const struct in6_addr *)a->dst;
    int group = IN6_IS_ADDR_MULTICAST(d);
    snprintf(from, sizeof from, "%s", group ? "::" : to);
    if (group || IN6_IS_ADDR_LINKLOCAL(d)) reply_index = a->ifindex;
  }
  const char *ifname = ifname_of(s, a->ifindex);
  napi_value entry, v;
  napi_create_array_with_length(env, 4, &entry);
  napi_create_string_latin1(env, to, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, entry, 0, v);
  if (ifname) napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &v);
  else napi_get_undefined(env, &v);
  napi_set_element(env, entry, 1, v);
  napi_create_string_latin1(env, from, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, entry, 2, v);
  napi_create_uint32(env, reply_index, &v);
  napi_set_element(env, entry, 3, v);
  return entry;
}

/*
 * Hands records to JS: onBatch(data, meta, count, senders, arrivals). meta holds per datagram
 * META_WORDS words: its length, its sender's index in senders, its kernel receive time (f64
 * ms since the epoch), the index of its arrival in arrivals, its TTL (NONE when not asked for
 * or not said) and its offset in data. Both buffers are reused by the next batch: JS copies
 * what it keeps. arrivals (see arrival_to_js) is undefined unless metadata was asked for. On a
 * receive error: onBatch(null, errorCode).
 */
int deliver_recs(sock_t *s, napi_env env, const rec_t *recs, uint32_t n, napi_value data) {
  napi_value cb, global, args[5], senders, arrivals, result;
  napi_get_reference_value(env, s->on_batch, &cb);
  napi_get_global(env, &global);
  args[0] = data;
  // The rows are the environment's, reused batch after batch. A delivery inside another (a
  // receive-thread socket closed from a batch's callback hands its rest over in the close)
  // takes rows of its own, so the batch still being read keeps its own.
  env_t *en = env_state(env);
  uint32_t *meta = s->meta;
  if (en->delivering > 0) {
    void *p = NULL;
    if (napi_create_buffer(env, (size_t)(n ? n : 1) * META_WORDS * 4, &p, &args[1]) != napi_ok) return -1;
    meta = p;
  }
  else napi_get_reference_value(env, s->meta_ref, &args[1]);
  napi_create_array(env, &senders);
  if (s->metadata) napi_create_array(env, &arrivals);
  else napi_get_undefined(env, &arrivals);
  // Distinct senders and arrivals, each said once: a flood from one sender costs one. Each
  // record is compared with the last SEEN said; one seen before those is said again (the
  // transport maps both to one object).
  enum { SEEN = 64 };
  static __thread uint32_t uniq[MAX_ROWS], seen[MAX_ROWS];
  uint32_t nuniq = 0, nseen = 0;
  for (uint32_t i = 0; i < n; i++) {
    const rec_t *r = &recs[i];
    uint32_t idx = NONE;
    for (uint32_t u = nuniq; idx == NONE && u > 0 && u + SEEN > nuniq; u--) {
      const rec_t *o = &recs[uniq[u - 1]];
      if (o->namelen == r->namelen && memcmp(&o->from, &r->from, r->namelen) == 0) idx = u - 1;
    }
    if (idx == NONE) {
      napi_value ip, port, pair;
      struct sockaddr_storage ss;
      memset(&ss, 0, sizeof ss);
      memcpy(&ss, &r->from, r->namelen);
      ip = addr_to_js(env, &ss, &port);
      napi_create_array_with_length(env, 2, &pair);
      napi_set_element(env, pair, 0, ip);
      napi_set_element(env, pair, 1, port);
      idx = nuniq;
      uniq[nuniq++] = i;
      napi_set_element(env, senders, idx, pair);
    }
    uint32_t where = NONE;
    const arrival_t *a = &r->a;
    if (s->metadata && a->family != 0) {
      for (uint32_t j = nseen; where == NONE && j > 0 && j + SEEN > nseen; j--) {
        const arrival_t *o = &recs[seen[j - 1]].a;
        if (o->family == a->family && o->ifindex == a->ifindex && memcmp(o->dst, a->dst, 16) == 0 &&
            memcmp(o->spec, a->spec, 4) == 0)
          where = j - 1;
      }
      if (where == NONE) {
        where = nseen;
        seen[nseen++] = i;
        napi_set_element(env, arrivals, where, arrival_to_js(env, s, a));
      }
    }
    uint32_t *row = meta + (size_t)i * META_WORDS;
    row[0] = r->len;
    row[1] = idx;
    memcpy(row + 2, &a->ms, sizeof a->ms);
    row[4] = where;
    row[5] = a->ttl < 0 ? NONE : (uint32_t)a->ttl;
    row[6] = r->off;
  }
  napi_create_uint32(env, n, &args[2]);
  args[3] = senders;
  args[4] = arrivals;
  // make_callback, not call_function: promises the callback resolves settle right after it.
  en->delivering++;
  napi_status st = napi_make_callback(env, s->async_ctx, global, cb, 5, args, &result);
  en->delivering--;
  return st == napi_ok ? 0 : -1;
}

void prepare_reads(struct mmsghdr *msgs, struct sockaddr_storage *addrs, unsigned char *ctrl, int ctrl_len, int n) {
  for (int i = 0; i < n; i++) {
    msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    msgs[i].msg_hdr.msg_control = ctrl + (size_t)i * (size_t)ctrl_len;
    msgs[i].msg_hdr.msg_controllen = (size_t)ctrl_len;
    msgs[i].msg_hdr.msg_flags = 0;
  }
}

double now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
}

uint32_t message_records(struct mmsghdr *m, double fallback, uint32_t base, rec_t *out, uint32_t max) {
  if (max == 0) return 0;
  struct msghdr *h = &m->msg_hdr;
  rec_t *r = &out[0];
  parse_cmsgs(h, fallback, &r->a);
  r->namelen = h->msg_namelen <= sizeof r->from ? h->msg_namelen : sizeof r->from;
  memcpy(&r->from, h->msg_name, r->namelen);
  uint32_t len = m->msg_len;
  uint32_t seg = r->a.gso > 0 && (uint32_t)r->a.gso < len ? (uint32_t)r->a.gso : len;
  uint32_t k = 0, off = 0;
  do {
    rec_t *d = &out[k];
    if (d != r) *d = *r;
    d->off = base + off;
    d->len = len - off < seg ? len - off : seg;
    off += d->len;
    k++;
  } while (off < len && k < max);
  return k;
}

/* The records of the n messages a recvmmsg just read into the slab (message i at i * MAX_DGRAM). */
static uint32_t slab_records(sock_t *s, rec_t *recs, int n) {
  double fallback = now_ms();
  uint32_t rows = 0;
  for (int i = 0; i < n && rows < MAX_ROWS; i++) {
    uint32_t k = message_records(&s->msgs[i], fallback, (uint32_t)i * MAX_DGRAM, &recs[rows], MAX_ROWS - rows);
    if (k > 1) s->gro_reads++;
    rows += k;
  }
  return rows;
}

static int deliver(sock_t *s, napi_env env, int n) {
  env_t *e = env_state(env);
  if (!e->recs) {
    e->recs = malloc(sizeof(rec_t) * MAX_ROWS);
    if (!e->recs) return -1;
  }
  uint32_t rows = slab_records(s, e->recs, n);
  napi_value slab;
  napi_get_reference_value(env, s->slab_ref, &slab);
  return deliver_recs(s, env, e->recs, rows, slab);
}

void surface_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return;
  napi_value exc;
  napi_get_and_clear_last_exception(env, &exc);
  napi_fatal_exception(env, exc);
}

void deliver_error(sock_t *s, napi_env env, int e) {
  napi_value cb, global, args[2], result;
  napi_get_reference_value(env, s->on_batch, &cb);
  napi_get_global(env, &global);
  napi_get_null(env, &args[0]);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &args[1]);
  napi_make_callback(env, s->async_ctx, global, cb, 2, args, &result);
}

static int read_batches(sock_t *s, int rounds) {
  int total = 0;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  for (int round = 0; round < rounds && !s->closed && (s->events & UV_READABLE) && s->budget != 0;
       round++) {
    // Never read more than the reader still wants: the rest stays in the kernel's buffer.
    int want = s->budget >= 0 && s->budget < BATCH ? (int)s->budget : BATCH;
    prepare_reads(s->msgs, s->addrs, s->ctrl, s->ctrl_len, want);
    int n = recvmmsg(s->fd, s->msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      deliver_error(s, env, errno);
      break;
    }
    if (n == 0) break;
    total += n;
    if (s->budget > 0) {
      s->budget -= n;
      if (s->budget == 0) update_poll(s);
    }
    int delivered = deliver(s, env, n);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      // An exception from the JS callback must surface, not vanish: rethrow it as fatal.
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
      break;
    }
    if (delivered < 0 || n < want) break;
  }
  napi_close_handle_scope(env, scope);
  return total;
}

static void timer_close_cb(uv_handle_t *h) { free(h); }

/*
 * Interrupt coalescing. Under load a wake-up per few datagrams costs more than the datagrams
 * themselves, so when wake-ups come within the same millisecond, stop watching readability and
 * read whatever queued up every coalesce_ms instead; go back to readability once a tick finds
 * nothing. The kernel timestamps each datagram, so receive times stay exact.
 */
static void on_timer(uv_timer_t *t) {
  sock_t *s = t->data;
  if (s->closed || !(s->events & UV_READABLE) || s->ring) {
    s->in_timer = 0;
    return;
  }
  int n = read_batches(s, 16); /* at most 1024 datagrams a tick: the loop has other work */
  if (s->closed) return;
  if (n > 0 && (s->events & UV_READABLE)) {
    uv_timer_start(s->timer, on_timer, (uint64_t)s->coalesce_ms, 0);
  } else {
    s->in_timer = 0;
    update_poll(s);
  }
}

static void maybe_coalesce(sock_t *s, int n) {
  if (s->coalesce_ms <= 0 || n <= 0 || s->closed || !(s->events & UV_READABLE)) return;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(s->env, &loop) != napi_ok) return;
  uint64_t now = uv_now(loop);
  int frequent = now - s->last_wake < 1;
  s->last_wake = now;
  if (!frequent) return;
  if (!s->timer) {
    s->timer = malloc(sizeof *s->timer);
    if (!s->timer) return;
    uv_timer_init(loop, s->timer);
    s->timer->data = s;
  }
  s->in_timer = 1;
  // Stop watching readability only: a send waiting for room must still hear of it.
  update_poll(s);
  uv_timer_start(s->timer, on_timer, (uint64_t)s->coalesce_ms, 0);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  if (s->closed) return;
  if (status < 0) events = s->events;
  if ((events & UV_READABLE) && !s->in_timer && !s->ring) maybe_coalesce(s, read_batches(s, MAX_ROUNDS));
  if (!s->closed && (events & UV_WRITABLE) && (s->events & UV_WRITABLE)) {
    s->events &= ~UV_WRITABLE;
    update_poll(s);
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb, global, result;
    napi_get_reference_value(env, s->on_writable, &cb);
    napi_get_global(env, &global);
    napi_make_callback(env, s->async_ctx, global, cb, 0, NULL, &result);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
    napi_close_handle_scope(env, scope);
  }
}

/* startReceiving(sock, onBatch, onWritable) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (!s->slab_ref) {
    // One receive slab for every socket of the environment (thread): a batch is handed to JS and done
    // with (JS copies what it keeps) before any other socket reads, so they never overlap,
    // and a thousand sockets cost one slab, not a thousand (4 MiB each).
    env_t *e = env_state(env);
    if (!e->slab_ref) {
      napi_value slab, meta;
      void *p;
      CALL(env, napi_create_buffer(env, (size_t)BATCH * MAX_DGRAM, &p, &slab));
      e->slab = p;
      CALL(env, napi_create_reference(env, slab, 1, &e->slab_ref));
      CALL(env, napi_create_buffer(env, (size_t)MAX_ROWS * META_WORDS * 4, &p, &meta));
      e->meta = p;
      CALL(env, napi_create_reference(env, meta, 1, &e->meta_ref));
    }
    napi_value slab, meta;
    CALL(env, napi_get_reference_value(env, e->slab_ref, &slab));
    CALL(env, napi_get_reference_value(env, e->meta_ref, &meta));
    s->slab = e->slab;
    s->meta = e->meta;
    CALL(env, napi_create_reference(env, slab, 1, &s->slab_ref));
    CALL(env, napi_create_reference(env, meta, 1, &s->meta_ref));
    for (int i = 0; i < BATCH; i++) {
      s->iov[i].iov_base = s->slab + (size_t)i * MAX_DGRAM;
      s->iov[i].iov_len = MAX_DGRAM;
      memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
      s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
      s->msgs[i].msg_hdr.msg_iovlen = 1;
      s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
      s->msgs[i].msg_hdr.msg_control = NULL;
    }
  }
  if (s->on_batch) napi_delete_reference(env, s->on_batch);
  if (s->on_writable) napi_delete_reference(env, s->on_writable);
  if (!s->async_ctx) {
    napi_value name;
    CALL(env, napi_create_string_utf8(env, "udpkit:socket", NAPI_AUTO_LENGTH, &name));
    CALL(env, napi_async_init(env, NULL, name, &s->async_ctx));
  }
  CALL(env, napi_create_reference(env, argv[1], 1, &s->on_batch));
  CALL(env, napi_create_reference(env, argv[2], 1, &s->on_writable));
  s->events |= UV_READABLE;
  if (update_poll(s) != 0) return throw_errno(env, EIO, "uv_poll_start");
  return NULL;
}

/* waitWritable(sock): calls onWritable once the socket can take more. */
static napi_value js_wait_writable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  s->events |= UV_WRITABLE;
  if (update_poll(s) != 0) return throw_errno(env, EIO, "uv_poll_start");
  return NULL;
}

/* pauseReceiving(sock, paused) */
static napi_value js_pause(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool paused;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &paused));
  if (paused) s->events &= ~UV_READABLE;
  else if (s->on_batch) s->events |= UV_READABLE;
  update_poll(s);
  ring_pause(s, !(s->events & UV_READABLE));
  return NULL;
}

/* The destination arguments (ip|null, port) of a send: `*len` stays 0 for a connected socket. */
static int dest_arg(napi_env env, sock_t *s, napi_value ip_value, napi_value port_value,
                    struct sockaddr_storage *ss, socklen_t *len) {
  napi_valuetype type;
  if (napi_typeof(env, ip_value, &type) != napi_ok) return -1;
  if (type != napi_string) return 0;
  char ip[64];
  int32_t port;
  if (napi_get_value_string_utf8(env, ip_value, ip, sizeof ip, NULL) != napi_ok ||
      napi_get_value_int32(env, port_value, &port) != napi_ok) {
    napi_throw_type_error(env, "UDP_ERR_NATIVE", "expected an IP string and a port");
    return -1;
  }
  if (make_addr(s, ip, port, ss, len) < 0) {
    throw_errno(env, EINVAL, "sendmmsg");
    return -1;
  }
  return 0;
}

#define SRC_CTRL CMSG_SPACE(sizeof(struct in6_pktinfo))

/*
 * The source arguments of a send (ip|null, interface index): the local address the datagrams
 * leave from and the interface they must leave through (0: as routed), as one control
 * message (IP_PKTINFO's ipi_spec_dst, or IPV6_PKTINFO) in `ctrl`. Returns the control
 * length, 0 for no source, or -1 with an exception pending.
 */
static int src_arg(napi_env env, sock_t *s, napi_value ip_value, napi_value index_value, unsigned char *ctrl) {
  napi_valuetype type;
  if (napi_typeof(env, ip_value, &type) != napi_ok) return -1;
  if (type != napi_string) return 0;
  char ip[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  uint32_t index = 0;
  if (napi_get_value_string_utf8(env, ip_value, ip, sizeof ip, NULL) != napi_ok ||
      napi_get_value_uint32(env, index_value, &index) != napi_ok) {
    napi_throw_type_error(env, "UDP_ERR_NATIVE", "expected a source address and an interface index");
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (make_addr(s, ip, 0, &ss, &len) < 0) {
    throw_errno(env, EINVAL, "sendmmsg");
    return -1;
  }
  memset(ctrl, 0, SRC_CTRL);
  struct msghdr m = {.msg_control = ctrl, .msg_controllen = SRC_CTRL};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  const struct in6_addr *v6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
  if (s->family == AF_INET || IN6_IS_ADDR_V4MAPPED(v6)) {
    struct in_pktinfo pi = {.ipi_ifindex = (int)index};
    if (s->family == AF_INET) pi.ipi_spec_dst = ((struct sockaddr_in *)&ss)->sin_addr;
    else memcpy(&pi.ipi_spec_dst, &v6->s6_addr[12], 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return (int)CMSG_SPACE(sizeof pi);
  }
  // A zone in the address (fe80::1%eth0) names the interface when no index was given.
  uint32_t scope = ((struct sockaddr_in6 *)&ss)->sin6_scope_id;
  struct in6_pktinfo pi = {.ipi6_addr = *v6, .ipi6_ifindex = index ? index : scope};
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof pi);
  memcpy(CMSG_DATA(c), &pi, sizeof pi);
  return (int)CMSG_SPACE(sizeof pi);
}

/* Gives each of `k` messages the source control message, when there is one. */
static void apply_source(struct mmsghdr *msgs, int k, unsigned char *ctrl, int ctrl_len) {
  if (ctrl_len <= 0) return;
  for (int i = 0; i < k; i++) {
    msgs[i].msg_hdr.msg_control = ctrl;
    msgs[i].msg_hdr.msg_controllen = (size_t)ctrl_len;
  }
}

enum { STEP_AGAIN = -1, STEP_FULL = -2, STEP_ERROR = -3 };

/* One sendmmsg call: datagrams taken, or AGAIN (interrupted), FULL (no room now), ERROR (errno). */
static int send_step(sock_t *s, struct mmsghdr *msgs, int k) {
  int r = sendmmsg(s->fd, msgs, (unsigned int)k, MSG_DONTWAIT);
  if (r >= 0) return r;
  if (errno == EINTR) return STEP_AGAIN;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return STEP_FULL;
  return STEP_ERROR;
}

/*
 * The messages of one sendmmsg call for datagrams first.. of a batch: each datagram its own
 * message, or, with GSO, runs of equal-size datagrams (up to MAX_SEGS and GSO_MAX_BYTES) as
 * one message with a UDP_SEGMENT control message, which the kernel (or the NIC) cuts into
 * datagrams again. A message's iovecs are its datagrams, wherever they lie in `data`. Fills
 * segs[m] with the datagrams of message m; returns the number of messages, or -1 when the
 * lengths run past the data.
 */
typedef struct {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH * MAX_SEGS];
  int segs[BATCH];
  unsigned char ctrl[BATCH][CMSG_SPACE(sizeof(uint16_t)) + SRC_CTRL];
} send_plan_t;

static int plan_send(sock_t *s, send_plan_t *p, unsigned char *data, size_t data_len, const uint32_t *lens,
                     const uint32_t *offs, size_t *cursor, int first, int count, struct sockaddr_storage *ss,
                     socklen_t sslen, const unsigned char *src, int src_len) {
  int m = 0, d = 0, v = 0;
  size_t o = *cursor;
  while (d < count && m < BATCH) {
    int k = 0;
    uint32_t l0 = lens[first + d];
    size_t bytes = 0;
    struct iovec *iov = &p->iov[v];
    while (d + k < count) {
      uint32_t l = lens[first + d + k];
      if (k > 0 && (!s->gso || l != l0 || k == MAX_SEGS || bytes + l > GSO_MAX_BYTES)) break;
      size_t at = offs ? offs[first + d + k] : o;
      if (at + l > data_len) return -1;
      iov[k].iov_base = data + at;
      iov[k].iov_len = l;
      o = at + l;
      bytes += l;
      k++;
      if (!s->gso || l0 == 0) break;
    }
    struct msghdr *h = &p->msgs[m].msg_hdr;
    memset(&p->msgs[m], 0, sizeof p->msgs[m]);
    h->msg_iov = iov;
    h->msg_iovlen = (size_t)k;
    if (sslen) {
      h->msg_name = ss;
      h->msg_namelen = sslen;
    }
    size_t clen = 0;
    if (src_len > 0) {
      memcpy(p->ctrl[m], src, (size_t)src_len);
      clen = (size_t)src_len;
    }
    if (k > 1) {
      struct cmsghdr *c = (struct cmsghdr *)(p->ctrl[m] + clen);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t size = (uint16_t)l0;
      memcpy(CMSG_DATA(c), &size, sizeof size);
      clen += CMSG_SPACE(sizeof(uint16_t));
    }
    if (clen) {
      h->msg_control = p->ctrl[m];
      h->msg_controllen = clen;
    }
    p->segs[m] = k;
    v += k;
    d += k;
    m++;
  }
  *cursor = o;
  return m;
}

/*
 * sendBatch(sock, data, lengths (Uint32Array), first, count, ip|null, port[, source|null,
 *   sourceIndex[, offsets (Uint32Array)]]) -> datagrams sent
 * Sends datagrams first..first+count-1 of `data`: packed back to back, or each at its
 * offsets[i] when offsets are given (records inside one chunk read from a file). From
 * `source` when given (see src_arg). Equal-size runs go out with UDP_SEGMENT while the socket
 * can: a kernel or route that refuses it (EINVAL, EIO: no checksum offload, a segment over
 * the route's MTU: EMSGSIZE) turns GSO off for the socket and the same datagrams go again,
 * one per message. Returns how many the kernel took (fewer when its buffer is full: call
 * waitWritable, then send the rest). Throws on any error but EAGAIN before the first datagram.
 */
static napi_value js_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10], out;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  unsigned char *data;
  size_t data_len;
  CALL(env, napi_get_buffer_info(env, argv[1], (void **)&data, &data_len));
  napi_typedarray_type type;
  size_t nlen, boff;
  void *lens_raw;
  napi_value ab;
  CALL(env, napi_get_typedarray_info(env, argv[2], &type, &nlen, &lens_raw, &ab, &boff));
  if (type != napi_uint32_array) {
    napi_throw_type_error(env, "UDP_ERR_NATIVE", "lengths must be a Uint32Array");
    return NULL;
  }
  uint32_t *lens = lens_raw;
  uint32_t *offs = NULL;
  if (argc > 9) {
    napi_valuetype t;
    CALL(env, napi_typeof(env, argv[9], &t));
    if (t == napi_object) {
      size_t olen;
      void *raw;
      CALL(env, napi_get_typedarray_info(env, argv[9], &type, &olen, &raw, &ab, &boff));
      if (type != napi_uint32_array || olen < nlen) {
        napi_throw_type_error(env, "UDP_ERR_NATIVE", "offsets must be a Uint32Array as long as lengths");
        return NULL;
      }
      offs = raw;
    }
  }
  int32_t first, count;
  CALL(env, napi_get_value_int32(env, argv[3], &first));
  CALL(env, napi_get_value_int32(env, argv[4], &count));
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  if (dest_arg(env, s, argv[5], argv[6], &ss, &sslen) < 0) return NULL;
  unsigned char src[SRC_CTRL];
  int src_len = argc > 8 ? src_arg(env, s, argv[7], argv[8], src) : 0;
  if (src_len < 0) return NULL;
  if (first < 0 || count < 0 || (size_t)first + (size_t)count > nlen) {
    napi_throw_range_error(env, "UDP_ERR_NATIVE", "batch out of range");
    return NULL;
  }
  size_t cursor = 0;
  if (!offs)
    for (int i = 0; i < first; i++) cursor += lens[i];
  int sent = 0;
  int plain_retry = 0;
  // One plan for the environment's sockets (sends never overlap on its thread): 70 KB each
  // would be 700 MB for a proxy's ten thousand flows.
  env_t *e = env_state(env);
  send_plan_t *p = e->plan;
  if (!p) {
    p = e->plan = malloc(sizeof *p);
    if (!p) return throw_errno(env, ENOMEM, "malloc");
  }
  while (sent < count) {
    size_t next = cursor;
    int m = plan_send(s, p, data, data_len, lens, offs, &next, first + sent, count - sent, &ss, sslen, src, src_len);
    if (m < 0) {
      napi_throw_range_error(env, "UDP_ERR_NATIVE", "lengths run past the data");
      return NULL;
    }
    int r = send_step(s, p->msgs, m);
    if (r == STEP_AGAIN) continue;
    if (r == STEP_ERROR && s->gso &&
        (errno == EINVAL || errno == EIO || errno == EOPNOTSUPP || errno == EMSGSIZE)) {
      int coalesced = 0;
      for (int i = 0; i < m; i++) coalesced |= p->segs[i] > 1;
      if (coalesced) {
        // Verified, not assumed: the route refuses GSO (no checksum offload, a segment over
        // its MTU). The same datagrams again, one per message; GSO stays off unless they
        // fail the same way (then the error was theirs, not GSO's).
        s->gso = 0;
        plain_retry = 1;
        continue;
      }
    }
    if (r == STEP_ERROR && plain_retry) {
      int e = errno;
      s->gso = 1;
      errno = e;
    }
    plain_retry = 0;
    if (r == STEP_FULL || (r == STEP_ERROR && sent > 0)) break; /* an error comes back next call */
    if (r == STEP_ERROR) return throw_errno(env, errno, "sendmmsg");
    int datagrams = 0;
    for (int i = 0; i < r; i++) {
      datagrams += p->segs[i];
      if (p->segs[i] > 1) s->gso_sends++;
    }
    if (!offs)
      for (int i = 0; i < datagrams; i++) cursor += lens[first + sent + i];
    sent += datagrams;
    if (r < m) break;
  }
  CALL(env, napi_create_int32(env, sent, &out));
  return out;
}

/*
 * gso(sock, on): whether equal-size datagrams may go out as one UDP_SEGMENT buffer (on only
 * where the kernel has it and UDPKIT_GSO is not 0). gro(sock, on): whether reads may take
 * many datagrams at once (UDP_GRO), split again in deliver(). Each returns what is in force.
 */
static napi_value js_gso(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  bool on;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &on));
  int v = 0;
  socklen_t vlen = sizeof v;
  s->gso = on && offload_allowed() && getsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &v, &vlen) == 0;
  CALL(env, napi_get_boolean(env, s->gso, &out));
  return out;
}

static napi_value js_gro(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  bool on;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &on));
  int v = on && offload_allowed() ? 1 : 0;
  if (setsockopt(s->fd, IPPROTO_UDP, UDP_GRO, &v, sizeof v) != 0) v = 0;
  s->gro = v;
  CALL(env, napi_get_boolean(env, s->gro, &out));
  return out;
}

/*
 * steerByCpu(sock, n): for a SO_REUSEPORT group of n sockets, bound in order: each datagram
 * goes to socket (the CPU that received it) mod n, a classic BPF program on the group
 * (SO_ATTACH_REUSEPORT_CBPF), instead of the hash of its addresses. With RSS or RPS spreading
 * flows over CPUs, each worker then reads what its own CPU took in.
 */
static napi_value js_steer_by_cpu(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t n;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_int32(env, argv[1], &n));
  if (n < 1) {
    napi_throw_range_error(env, "UDP_ERR_NATIVE", "a group of at least one socket");
    return NULL;
  }
  struct sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, (uint32_t)n},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  struct sock_fprog prog = {.len = 3, .filter = code};
  if (setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
    return throw_errno(env, errno, "setsockopt SO_ATTACH_REUSEPORT_CBPF");
  return NULL;
}

/* offloads(sock) -> [gsoOn, groOn, buffers sent with GSO, buffers read holding several datagrams] */
static napi_value js_offloads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_create_array_with_length(env, 4, &out));
  napi_get_boolean(env, s->gso, &v);
  napi_set_element(env, out, 0, v);
  napi_get_boolean(env, s->gro, &v);
  napi_set_element(env, out, 1, v);
  napi_create_double(env, s->gso_sends, &v);
  napi_set_element(env, out, 2, v);
  napi_create_double(env, s->gro_reads + ring_gro_reads(s), &v);
  napi_set_element(env, out, 3, v);
  return out;
}

/* setCoalesce(sock, ms): 0 reads on every wake-up; more batches arrivals under load. */
static napi_value js_set_coalesce(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t ms;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_int32(env, argv[1], &ms));
  s->coalesce_ms = ms < 0 ? 0 : ms;
  return NULL;
}

/*
 * One precise timer per environment (thread): a timerfd watched by libuv, so JS can be woken with
 * microsecond precision without blocking the event loop (libuv's own timers have millisecond
 * resolution). The scheduler in src/lib/scheduler.ts keeps its heap of deadlines behind it.
 */

static void ptimer_cb(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  env_t *ptimer = h->data;
  uint64_t expirations;
  if (read(ptimer->timer_fd, &expirations, sizeof expirations) < 0 && errno == EAGAIN) return;
  // The poll stays on (the timerfd is quiet until armed again): most wake-ups re-arm it at
  // once, and stopping and starting it would cost two epoll_ctl calls each time.
  napi_env env = ptimer->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, result;
  napi_get_reference_value(env, ptimer->on_fire, &cb);
  napi_get_global(env, &global);
  napi_make_callback(env, ptimer->timer_ctx, global, cb, 0, NULL, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

/* timerInit(onFire): the callback each time the timer fires. Once per process. */
static napi_value js_timer_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  env_t *ptimer = env_state(env);
  if (ptimer->timer_fd >= 0) {
    napi_throw_error(env, "UDP_ERR_NATIVE", "the precise timer is already initialised");
    return NULL;
  }
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "timerfd_create");
  uv_loop_t *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  ptimer->timer_poll = malloc(sizeof *ptimer->timer_poll);
  if (!ptimer->timer_poll || uv_poll_init(loop, ptimer->timer_poll, fd) != 0) {
    free(ptimer->timer_poll);
    ptimer->timer_poll = NULL;
    close(fd);
    return throw_errno(env, EIO, "uv_poll_init");
  }
  ptimer->timer_poll->data = ptimer;
  ptimer->timer_fd = fd;
  ptimer->env = env;
  napi_value name;
  CALL(env, napi_create_string_utf8(env, "udpkit:timer", NAPI_AUTO_LENGTH, &name));
  CALL(env, napi_async_init(env, NULL, name, &ptimer->timer_ctx));
  CALL(env, napi_create_reference(env, argv[0], 1, &ptimer->on_fire));
  return NULL;
}

/* timerArm(delayMs): fire once after delayMs, fractional; 0 or less fires as soon as possible. */
static napi_value js_timer_arm(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CALL(env, napi_get_value_double(env, argv[0], &ms));
  env_t *ptimer = env_state(env);
  if (ptimer->timer_fd < 0) {
    napi_throw_error(env, "UDP_ERR_NATIVE", "the precise timer is not initialised");
    return NULL;
  }
  long long ns = ms > 0 ? (long long)(ms * 1e6) : 0;
  if (ns < 1000) ns = 1000; /* a zero it_value would disarm */
  struct itimerspec its = {{0, 0}, {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)}};
  if (timerfd_settime(ptimer->timer_fd, 0, &its, NULL) < 0) return throw_errno(env, errno, "timerfd_settime");
  if (!ptimer->armed) {  /* armed: the poll is on */
    ptimer->armed = 1;
    uv_poll_start(ptimer->timer_poll, UV_READABLE, ptimer_cb);
  }
  return NULL;
}

/* timerDisarm(): nothing is due; the timer no longer keeps the process alive. */
static napi_value js_timer_disarm(napi_env env, napi_callback_info info) {
  (void)info;
  env_t *ptimer = env_state(env);
  if (ptimer->timer_fd < 0) return NULL;
  struct itimerspec its = {{0, 0}, {0, 0}};
  timerfd_settime(ptimer->timer_fd, 0, &its, NULL);
  ptimer->armed = 0;
  uv_poll_stop(ptimer->timer_poll);
  return NULL;
}

/*
 * setReadLimit(sock, n, more): read at most n more datagrams, then stop; -1 lifts the limit.
 * With more true, n is added to a limit in force instead (for datagrams JS read and set
 * aside, such as a denied sender's, which should not count against it).
 */
static napi_value js_set_read_limit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int64_t n;
  bool more = false;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_get_value_int64(env, argv[1], &n));
  if (argc > 2) CALL(env, napi_get_value_bool(env, argv[2], &more));
  if (more) {
    if (s->budget >= 0 && n > 0) s->budget += n;
  } else {
    s->budget = n < 0 ? -1 : n;
  }
  ring_limit(s, n, more);
  if (!s->closed && s->on_batch) update_poll(s);
  return NULL;
}

/* fd(sock) -> the descriptor, for reading the kernel's counters of this socket */
static napi_value js_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  CALL(env, napi_create_int32(env, s->fd, &out));
  return out;
}

/*
 * drops(fd) -> datagrams the kernel dropped for the socket on descriptor fd (its receive
 * buffer was full, or a filter refused them), or undefined where the kernel does not say.
 * One getsockopt(SO_MEMINFO) (Linux 4.12+): the socket's own sk_drops, current at any time,
 * where SO_RXQ_OVFL only reports it with the next datagram received. Takes a descriptor, not
 * a socket of this addon, so node:dgram's sockets can be asked too.
 */
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#define MEMINFO_VARS 16
#define MEMINFO_DROPS 8 /* SK_MEMINFO_DROPS in linux/sock_diag.h */
static napi_value js_drops(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t fd;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CALL(env, napi_get_value_int32(env, argv[0], &fd));
  uint32_t mem[MEMINFO_VARS] = {0};
  socklen_t len = sizeof mem;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
      len < (MEMINFO_DROPS + 1) * sizeof(uint32_t)) {
    CALL(env, napi_get_undefined(env, &out));
    return out;
  }
  CALL(env, napi_create_uint32(env, mem[MEMINFO_DROPS], &out));
  return out;
}

/*
 * sendBuffers(sock, buffers (Array of Buffer), first, count, ip|null|ips, port|ports[, source,
 *   sourceIndex]) -> datagrams sent
 * Like sendBatch, for datagrams that are separate Buffers: no packing copy needed. With an
 * array of ips and one of ports, datagram i goes to ips[i]:ports[i] (sendmmsg's per-message
 * address), so one call answers many peers.
 */
static napi_value js_send_buffers(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  uint32_t len;
  CALL(env, napi_get_array_length(env, argv[1], &len));
  int32_t first, count;
  CALL(env, napi_get_value_int32(env, argv[2], &first));
  CALL(env, napi_get_value_int32(env, argv[3], &count));
  if (first < 0 || count < 0 || (uint32_t)first + (uint32_t)count > len) {
    napi_throw_range_error(env, "UDP_ERR_NATIVE", "batch out of range");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  // One destination for all (ip, port), or one per datagram (an array of ips, one of ports).
  bool each = false;
  CALL(env, napi_is_array(env, argv[4], &each));
  if (!each && dest_arg(env, s, argv[4], argv[5], &ss, &sslen) < 0) return NULL;
  unsigned char ctrl[SRC_CTRL];
  int ctrl_len = argc > 7 ? src_arg(env, s, argv[6], argv[7], ctrl) : 0;
  if (ctrl_len < 0) return NULL;
  int sent = 0;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage dests[BATCH];
  while (sent < count) {
    int k = count - sent < BATCH ? count - sent : BATCH;
    for (int i = 0; i < k; i++) {
      napi_value el;
      void *data;
      size_t dlen;
      uint32_t at = (uint32_t)(first + sent + i);
      CALL(env, napi_get_element(env, argv[1], at, &el));
      CALL(env, napi_get_buffer_info(env, el, &data, &dlen));
      iov[i].iov_base = data;
      iov[i].iov_len = dlen;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (each) {
        napi_value ip, port;
        socklen_t dlen2 = 0;
        CALL(env, napi_get_element(env, argv[4], at, &ip));
        CALL(env, napi_get_element(env, argv[5], at, &port));
        if (dest_arg(env, s, ip, port, &dests[i], &dlen2) < 0) return NULL;
        msgs[i].msg_hdr.msg_name = &dests[i];
        msgs[i].msg_hdr.msg_namelen = dlen2;
      } else if (sslen) {
        msgs[i].msg_hdr.msg_name = &ss;
        msgs[i].msg_hdr.msg_namelen = sslen;
      }
    }
    apply_source(msgs, k, ctrl, ctrl_len);
    int r = send_step(s, msgs, k);
    if (r == STEP_AGAIN) continue;
    if (r == STEP_FULL || (r == STEP_ERROR && sent > 0)) break; /* an error comes back next call */
    if (r == STEP_ERROR) return throw_errno(env, errno, "sendmmsg");
    sent += r;
    if (r < k) break;
  }
  CALL(env, napi_create_int32(env, sent, &out));
  return out;
}

/* The arguments of the output helpers: (src, dst, offset), with room for `need(n)` bytes. */
static int into_args(napi_env env, napi_callback_info info, size_t (*need)(size_t), const char *no_room,
                     unsigned char **src, size_t *n, unsigned char **dst) {
  size_t argc = 3, cap;
  napi_value argv[3];
  int32_t offset;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||
      napi_get_buffer_info(env, argv[0], (void **)src, n) != napi_ok ||
      napi_get_buffer_info(env, argv[1], (void **)dst, &cap) != napi_ok ||
      napi_get_value_int32(env, argv[2], &offset) != napi_ok) {
    napi_throw_type_error(env, "UDP_ERR_NATIVE", "expected (src Buffer, dst Buffer, offset)");
    return -1;
  }
  if (offset < 0 || (size_t)offset + need(*n) > cap) {
    napi_throw_range_error(env, "UDP_ERR_NATIVE", no_room);
    return -1;
  }
  return offset;
}

static size_t hex_need(size_t n) { return (n + 15) / 16 * 80; }
static size_t base64_need(size_t n) { return (n + 2) / 3 * 4; }

/*
 * Output helpers: the formats' hottest loops, for when the addon is there (format.ts keeps
 * the same loops in TypeScript and is tested against these).
 *
 * hexDumpInto(src, dst, offset) -> end: `hexdump -C` lines of src written into dst at offset.
 */
static napi_value js_hex_dump_into(napi_env env, napi_callback_info info) {
  napi_value out;
  unsigned char *src, *dst;
  size_t n;
  int offset = into_args(env, info, hex_need, "no room for the dump", &src, &n, &dst);
  if (offset < 0) return NULL;
  static const char hex[] = "0123456789abcdef";
  unsigned char *o = dst + offset;
  for (size_t off = 0; off < n; off += 16) {
    for (int shift = 28; shift >= 0; shift -= 4) *o++ = (unsigned char)hex[(off >> shift) & 15];
    *o++ = ' ';
    *o++ = ' ';
    size_t end = off + 16 < n ? off + 16 : n;
    for (size_t j = 0; j < 16; j++) {
      if (j == 8) *o++ = ' ';
      if (off + j < end) {
        unsigned char c = src[off + j];
        *o++ = (unsigned char)hex[c >> 4];
        *o++ = (unsigned char)hex[c & 15];
      } else {
        *o++ = ' ';
        *o++ = ' ';
      }
      *o++ = ' ';
    }
    *o++ = ' ';
    *o++ = '|';
    for (size_t k = off; k < end; k++) *o++ = src[k] >= 0x20 && src[k] < 0x7f ? src[k] : '.';
    *o++ = '|';
    *o++ = '\n';
  }
  CALL(env, napi_create_int32(env, (int32_t)(o - dst), &out));
  return out;
}

/* base64Into(src, dst, offset) -> end: src in base64 (with padding) written into dst at offset. */
static napi_value js_base64_into(napi_env env, napi_callback_info info) {
  napi_value out;
  unsigned char *src, *dst;
  size_t n;
  int offset = into_args(env, info, base64_need, "no room for the base64", &src, &n, &dst);
  if (offset < 0) return NULL;
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char *o = dst + offset;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
    *o++ = (unsigned char)b64[v >> 18];
    *o++ = (unsigned char)b64[(v >> 12) & 63];
    *o++ = (unsigned char)b64[(v >> 6) & 63];
    *o++ = (unsigned char)b64[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);
    *o++ = (unsigned char)b64[v >> 18];
    *o++ = (unsigned char)b64[(v >> 12) & 63];
    *o++ = i + 1 < n ? (unsigned char)b64[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  CALL(env, napi_create_int32(env, (int32_t)(o - dst), &out));
  return out;
}

/* close(sock) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = NULL;
  CALL(env, napi_get_value_external(env, argv[0], (void **)&s));
  if (!s || s->closed) return NULL;
  ring_stop(s, env, 1);
  s->closed = 1;
  s->events = 0;
  if (s->poll) {
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, poll_close_cb);
    s->poll = NULL;
  }
  if (s->timer) {
    uv_timer_stop(s->timer);
    uv_close((uv_handle_t *)s->timer, timer_close_cb);
    s->timer = NULL;
  }
  close(s->fd);
  if (s->on_batch) {
    napi_delete_reference(env, s->on_batch);
    s->on_batch = NULL;
  }
  if (s->on_writable) {
    napi_delete_reference(env, s->on_writable);
    s->on_writable = NULL;
  }
  if (s->slab_ref) {
    napi_delete_reference(env, s->slab_ref);
    s->slab_ref = NULL;
  }
  if (s->meta_ref) {
    napi_delete_reference(env, s->meta_ref);
    s->meta_ref = NULL;
  }
  s->slab = NULL;
  s->meta = NULL;
  if (s->async_ctx) {
    napi_async_destroy(env, s->async_ctx);
    s->async_ctx = NULL;
  }
  return NULL;
}

static void env_free(napi_env env, void *data, void *hint) {
  (void)hint;
  env_t *e = data;
  if (e->slab_ref) napi_delete_reference(env, e->slab_ref);
  if (e->meta_ref) napi_delete_reference(env, e->meta_ref);
  if (e->on_fire) napi_delete_reference(env, e->on_fire);
  if (e->timer_ctx) napi_async_destroy(env, e->timer_ctx);
  if (e->timer_poll) {
    uv_poll_stop(e->timer_poll);
    uv_close((uv_handle_t *)e->timer_poll, NULL); /* as in finalize_sock: no callback at teardown */
  }
  if (e->timer_fd >= 0) close(e->timer_fd);
  free(e->plan);
  free(e->recs);
  free(e);
}

static napi_value init(napi_env env, napi_value exports) {
  env_t *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->timer_fd = -1;
  if (napi_set_instance_data(env, e, env_free, NULL) != napi_ok) {
    free(e);
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"bind", NULL, js_bind, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"localAddress", NULL, js_local_address, NULL, NULL, NULL, napi_default, NULL},
      {"bufferSize", NULL, js_buffer_size, NULL, NULL, NULL, napi_default, NULL},
      {"setOption", NULL, js_set_option, NULL, NULL, NULL, napi_default, NULL},
      {"membership", NULL, js_membership, NULL, NULL, NULL, napi_default, NULL},
      {"multicastInterface", NULL, js_multicast_interface, NULL, NULL, NULL, napi_default, NULL},
      {"bindToDevice", NULL, js_bind_to_device, NULL, NULL, NULL, napi_default, NULL},
      {"receiveMetadata", NULL, js_receive_metadata, NULL, NULL, NULL, napi_default, NULL},
      {"startReceiving", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"pauseReceiving", NULL, js_pause, NULL, NULL, NULL, napi_default, NULL},
      {"waitWritable", NULL, js_wait_writable, NULL, NULL, NULL, napi_default, NULL},
      {"sendBuffers", NULL, js_send_buffers, NULL, NULL, NULL, napi_default, NULL},
      {"sendBatch", NULL, js_send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"gso", NULL, js_gso, NULL, NULL, NULL, napi_default, NULL},
      {"gro", NULL, js_gro, NULL, NULL, NULL, napi_default, NULL},
      {"offloads", NULL, js_offloads, NULL, NULL, NULL, napi_default, NULL},
      {"steerByCpu", NULL, js_steer_by_cpu, NULL, NULL, NULL, napi_default, NULL},
      {"receiveThread", NULL, js_receive_thread, NULL, NULL, NULL, napi_default, NULL},
      {"ringStats", NULL, js_ring_stats, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"setCoalesce", NULL, js_set_coalesce, NULL, NULL, NULL, napi_default, NULL},
      {"hexDumpInto", NULL, js_hex_dump_into, NULL, NULL, NULL, napi_default, NULL},
      {"base64Into", NULL, js_base64_into, NULL, NULL, NULL, napi_default, NULL},
      {"fd", NULL, js_fd, NULL, NULL, NULL, napi_default, NULL},
      {"drops", NULL, js_drops, NULL, NULL, NULL, napi_default, NULL},
      {"setReadLimit", NULL, js_set_read_limit, NULL, NULL, NULL, napi_default, NULL},
      {"timerInit", NULL, js_timer_init, NULL, NULL, NULL, napi_default, NULL},
      {"timerArm", NULL, js_timer_arm, NULL, NULL, NULL, napi_default, NULL},
      {"timerDisarm", NULL, js_timer_disarm, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/* The C firmware as a host process: a board on a pseudo-terminal or a TCP socket.
 *
 *   el_device --pty | --port socket-server://HOST:PORT
 *             [--ram BYTES] [--flash BYTES] [--flash-file PATH] [--baud N] [--window N]
 *             [--max-payload N] [--seed N] [--profile NAME] [--protocol-version N]
 *             [--reset-after-bytes N] [--exit-on-close]
 *
 * Prints the pty's slave path (or socket://HOST:PORT) on stdout, logs on stderr, and moves
 * bytes between the line and el_device (the same code as the Cortex-M build) exactly like the
 * Python simulator's server loop (firmware_sim/server.py): output is queued and written without
 * blocking (bounded queue: overflowing frames are dropped and recovered by retransmission),
 * both directions paced to --baud (8N1), EIO on the pty master means "client closed" (the
 * session ends; --exit-on-close exits). SIGUSR1 power-cycles the board, SIGTERM/SIGINT stop.
 * Flash persists in --flash-file (written atomically at every commit). This port is the only
 * place that allocates memory: the board's RAM, flash and blob areas, once at start.
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "el_device.h"

#define QUEUE_BYTES (4u << 20)
#define SLACK 0.020

static volatile sig_atomic_t stop_requested, reset_requested;
static void on_stop(int s) { (void)s; stop_requested = 1; }
static void on_reset(int s) { (void)s; reset_requested = 1; }

typedef struct {
    int fd;                 /* the line: pty master or accepted socket (-1: none) */
    int listen_fd;          /* TCP listener, or -1 */
    int is_pty, connected;
    double byte_time;       /* seconds per byte at --baud (0: unpaced) */
    double tx_free;
    uint8_t *queue;
    uint32_t q_len;
    const char *flash_file;
    uint8_t *flash;
    uint32_t flash_size;
} host;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *msg)
{
    fprintf(stderr, "firmware (C): error: %s\n", msg);
    exit(2);
}

/* write what the pacing allows, without blocking */
static void pump(host *h)
{
    while (h->q_len && h->fd >= 0) {
        double t = now_s();
        uint32_t n = h->q_len;
        if (h->byte_time > 0) {
            if (t < h->tx_free) return;
            uint32_t quantum = (uint32_t)(0.002 / h->byte_time);
            if (quantum < 1) quantum = 1;
            if (n > quantum) n = quantum;
        }
        ssize_t w = write(h->fd, h->queue, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            h->q_len = 0;                 /* no client: the bytes are lost, as on a real line */
            return;
        }
        memmove(h->queue, h->queue + w, h->q_len - (uint32_t)w);
        h->q_len -= (uint32_t)w;
        if (h->byte_time > 0) {
            double base = t - SLACK > h->tx_free ? t - SLACK : h->tx_free;
            h->tx_free = base + (double)w * h->byte_time;
        }
    }
}

static void port_write(void *ctx, const uint8_t *d, uint32_t n)
{
    host *h = (host *)ctx;
    if (h->fd < 0) return;
    if (h->q_len + n > QUEUE_BYTES) return;      /* dropped: the host retransmits */
    memcpy(h->queue + h->q_len, d, n);
    h->q_len += n;
    pump(h);
}

static uint32_t port_now(void *ctx)
{
    (void)ctx;
    return (uint32_t)(uint64_t)(now_s() * 1000.0);
}

static void port_log(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "firmware (C): %s\n", line);
}

static int flash_erase(void *ctx, uint32_t off, uint32_t n)
{
    host *h = (host *)ctx;
    memset(h->flash + off, 0xFF, n);
    return 0;
}

static int flash_program(void *ctx, uint32_t off, const uint8_t *d, uint32_t n)
{
    host *h = (host *)ctx;
    memcpy(h->flash + off, d, n);
    return 0;
}

/* the whole flash to --flash-file: temporary file, fsync, rename */
static int flash_persist(void *ctx)
{
    host *h = (host *)ctx;
    if (!h->flash_file) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", h->flash_file, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    uint32_t done = 0;
    while (done < h->flash_size) {
        ssize_t w = write(fd, h->flash + done, h->flash_size - done);
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        done += (uint32_t)w;
    }
    if (fsync(fd) || close(fd) || rename(tmp, h->flash_file)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void set_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
}

static void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static unsigned long number(const char *flag, const char *v)
{
    char *end;
    unsigned long n = strtoul(v, &end, 0);
    if (!*v || *end) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s needs a number, got '%s'", flag, v);
        die(msg);
    }
    return n;
}

int main(int argc, char **argv)
{
    static host h;
    el_device_config cfg = {262144, 1048576, 1024, 8, 0, 1, "cortex-m4-256k"};
    const char *port = 0;
    int use_pty = 0, exit_on_close = 0;
    unsigned long reset_after = 0, version = EL_PROTOCOL_VERSION;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--pty")) use_pty = 1;
        else if (!strcmp(a, "--exit-on-close")) exit_on_close = 1;
        else if (!strcmp(a, "--port")) port = v, i++;
        else if (!strcmp(a, "--ram")) cfg.ram = (uint32_t)number(a, v), i++;
        else if (!strcmp(a, "--flash")) cfg.flash = (uint32_t)number(a, v), i++;
        else if (!strcmp(a, "--flash-file")) h.flash_file = v, i++;
        else if (!strcmp(a, "--baud")) cfg.baud = (uint32_t)number(a, v), i++;
        else if (!strcmp(a, "--window")) cfg.window = (uint8_t)number(a, v), i++;
        else if (!strcmp(a, "--max-payload")) cfg.max_payload = (uint16_t)number(a, v), i++;
        else if (!strcmp(a, "--seed")) cfg.seed = (uint32_t)number(a, v), i++;
        else if (!strcmp(a, "--profile")) cfg.profile = v, i++;
        else if (!strcmp(a, "--protocol-version")) version = number(a, v), i++;
        else if (!strcmp(a, "--reset-after-bytes")) reset_after = number(a, v), i++;
        else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown argument '%s'", a);
            die(msg);
        }
    }
    if (use_pty == (port != 0)) die("give exactly one of --pty and --port socket-server://HOST:PORT");
    if (cfg.max_payload < 128 || cfg.max_payload > 4096) die("--max-payload must be 128..4096");
    if (cfg.window < 1 || cfg.window > 64) die("--window must be 1..64");
    if (cfg.flash < 2 * (64 + 1024)) die("--flash is too small for two slots");
    if (el_fixed_selftest()) die("integer self-test failed (this compiler's semantics differ)");
    h.flash_size = cfg.flash;
    h.flash = (uint8_t *)malloc(cfg.flash);
    uint32_t slot = cfg.flash / 2 - 64, snap = slot > cfg.ram ? slot : cfg.ram;
    el_device_memory mem = {malloc(cfg.ram), h.flash, malloc(slot), malloc(slot), malloc(2048),
                            malloc(slot), malloc(snap)};
    h.queue = (uint8_t *)malloc(QUEUE_BYTES);
    if (!h.flash || !mem.arena || !mem.stage || !mem.head_blob || !mem.pull || !mem.blob_snap ||
        !h.queue)
        die("out of memory for the board's RAM and flash");
    memset(h.flash, 0xFF, cfg.flash);
    if (h.flash_file) {
        FILE *f = fopen(h.flash_file, "rb");
        if (f) {
            size_t n = fread(h.flash, 1, cfg.flash, f);
            int extra = fgetc(f) != EOF;
            fclose(f);
            if (n != cfg.flash || extra) {
                char msg[300];
                snprintf(msg, sizeof msg, "flash file %s does not hold %lu B", h.flash_file,
                         (unsigned long)cfg.flash);
                die(msg);
            }
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", h.flash_file);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        if (access(dir[0] ? dir : "/", W_OK | X_OK)) {
            char msg[300];
            snprintf(msg, sizeof msg, "flash file %s cannot be written (its folder must be writable)",
                     h.flash_file);
            die(msg);
        }
    }
    h.fd = h.listen_fd = -1;
    char announce[300];
    if (use_pty) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) || unlockpt(master)) die("cannot open a pseudo-terminal");
        const char *slave = ptsname(master);
        int s = open(slave, O_RDWR | O_NOCTTY);
        if (s < 0) die("cannot open the pty slave");
        set_raw(master);
        set_raw(s);
        close(s);
        nonblocking(master);
        h.fd = master;
        h.is_pty = 1;
        snprintf(announce, sizeof announce, "%s", slave);
    } else {
        if (strncmp(port, "socket-server://", 16)) die("--port must be socket-server://HOST:PORT");
        char hostpart[256];
        snprintf(hostpart, sizeof hostpart, "%s", port + 16);
        char *colon = strrchr(hostpart, ':');
        int num = colon ? atoi(colon + 1) : 0;
        if (colon) *colon = 0;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)num);
        if (inet_pton(AF_INET, hostpart[0] ? hostpart : "127.0.0.1", &sa.sin_addr) != 1)
            die("--port: HOST must be an IPv4 address");
        h.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(h.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(h.listen_fd, (struct sockaddr *)&sa, sizeof sa) || listen(h.listen_fd, 1))
            die("cannot listen on the TCP port");
        socklen_t sl = sizeof sa;
        getsockname(h.listen_fd, (struct sockaddr *)&sa, &sl);
        snprintf(announce, sizeof announce, "socket://%s:%u", inet_ntoa(sa.sin_addr),
                 (unsigned)ntohs(sa.sin_port));
    }
    h.byte_time = cfg.baud ? 10.0 / cfg.baud : 0.0;
    el_port p = {port_write, port_now, port_log, flash_erase, flash_program, flash_persist, &h};
    static el_device dev;
    if (el_device_init(&dev, &cfg, &mem, &p)) die("the link buffers do not fit --ram");
    dev.link.version = (uint8_t)version;
    signal(SIGUSR1, on_reset);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "firmware (C): %s: RAM %lu B, flash %lu B, %s, active slot %s; listening on %s\n",
            cfg.profile, (unsigned long)cfg.ram, (unsigned long)cfg.flash,
            cfg.baud ? "paced" : "unpaced",
            dev.running == EL_NO_SLOT ? "none" : (dev.running ? "1" : "0"), announce);
    printf("%s\n", announce);
    fflush(stdout);
    uint8_t buf[65536];
    unsigned long rx_bytes = 0;
    double rx_free = now_s();
    while (!stop_requested) {
        if (reset_requested) {
            reset_requested = 0;
            el_device_reboot(&dev);
            dev.link.version = (uint8_t)version;
            h.q_len = 0;
        }
        pump(&h);
        double t = now_s();
        if (t < rx_free) {
            usleep((useconds_t)((rx_free - t > 0.002 ? 0.002 : rx_free - t) * 1e6));
            continue;
        }
        int fd = h.fd >= 0 ? h.fd : h.listen_fd;
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        struct timeval tv = {0, h.q_len ? 1000 : (h.byte_time > 0 ? 2000 : 50000)};
        int ready = select(fd + 1, &rs, 0, 0, &tv);
        if (ready < 0) continue;
        if (ready == 0) {
            if (h.is_pty) h.connected = 1;      /* no EIO: a client holds the slave */
            continue;
        }
        if (h.fd < 0) {                         /* TCP: accept the next client */
            h.fd = accept(h.listen_fd, 0, 0);
            if (h.fd >= 0) {
                int one = 1;
                setsockopt(h.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                nonblocking(h.fd);
            }
            continue;
        }
        uint32_t limit = sizeof buf;
        if (h.byte_time > 0) {
            uint32_t quantum = (uint32_t)(0.002 / h.byte_time);
            limit = quantum < 1 ? 1 : (quantum < limit ? quantum : limit);
        }
        ssize_t n = read(h.fd, buf, limit);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) {                           /* the client closed the line */
            if (h.is_pty) {
                if (n < 0 && errno == EIO && !h.connected) {
                    usleep(20000);              /* nobody has the slave open yet */
                    continue;
                }
                h.connected = 0;
            } else {
                close(h.fd);
                h.fd = -1;
            }
            dev.link.session = 0;
            dev.link.rx_len = 0;
            dev.link.rx_overflow = 0;
            h.q_len = 0;
            if (exit_on_close) break;
            continue;
        }
        h.connected = 1;
        if (h.byte_time > 0) {
            double base = t - SLACK > rx_free ? t - SLACK : rx_free;
            rx_free = base + (double)n * h.byte_time;
        }
        uint32_t m = (uint32_t)n, off = 0;
        if (reset_after && rx_bytes < reset_after && reset_after <= rx_bytes + m) {
            uint32_t cut = (uint32_t)(reset_after - rx_bytes);
            el_device_feed(&dev, buf, cut);
            el_device_reboot(&dev);
            dev.link.version = (uint8_t)version;
            h.q_len = 0;
            fprintf(stderr, "firmware (C): injected reset after %lu received bytes\n", reset_after);
            rx_bytes += cut;
            off = cut;
        }
        rx_bytes += m - off;
        el_device_feed(&dev, buf + off, m - off);
    }
    return 0;
}

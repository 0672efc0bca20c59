/* libcurl's socket interface on epoll, as a libcurl user writes it: N GETs of one URL with P
 * in flight, bodies counted and dropped.
 *
 * usage: curl_bench URL COUNT PARALLEL BUFSIZE [CAFILE [1.1|2]]
 * prints: seconds bytes cpu_seconds failures
 *
 * With CAFILE (HTTPS), the HTTP version is libcurl's default (HTTP/2 by ALPN, multiplexed:
 * CURLPIPE_MULTIPLEX is the default since 7.62) with CURLOPT_PIPEWAIT, as the curl tool sets
 * it for --parallel; "1.1" asks for HTTP/1.1 only.
 *
 * Easy handles are reused (removed, then added again), the best case for libcurl. The timer
 * is treated as consumed once it fires, and re-armed only when libcurl says so. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

static int ep;
static long timeout_ms = -1;
static long long bytes;

static size_t on_write(char *p, size_t s, size_t n, void *u) {
    (void)p; (void)u;
    bytes += (long long)(s * n);
    return s * n;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *up, void *sp) {
    (void)e; (void)up;
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0)
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    (void)sp;
    return 0;
}

static int on_timer(CURLM *m, long ms, void *u) {
    (void)m; (void)u;
    timeout_ms = ms;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: %s URL COUNT PARALLEL BUFSIZE [CAFILE [1.1|2]]\n", argv[0]);
        return 2;
    }
    const char *cafile = argc > 5 ? argv[5] : NULL;
    int h1 = argc > 6 && argv[6][0] == '1';
    const char *url = argv[1];
    long count = atol(argv[2]), parallel = atol(argv[3]), bufsize = atol(argv[4]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ep = epoll_create1(EPOLL_CLOEXEC);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
    long started = 0, finished = 0, failures = 0;
    double t0 = now();
    for (long i = 0; i < parallel && started < count; i++, started++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, bufsize);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        if (cafile) {
            curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
            curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                             h1 ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
        }
        curl_multi_add_handle(m, e);
    }
    struct epoll_event evs[256];
    int running = 1;
    while (finished < count) {
        int n = epoll_wait(ep, evs, 256, timeout_ms < 0 ? 1000 : (int)timeout_ms);
        if (n == 0) {
            timeout_ms = -1;
            curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        for (int i = 0; i < n; i++) {
            int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                       (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(m, evs[i].data.fd, mask, &running);
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            if (msg->data.result != CURLE_OK)
                failures++;
            finished++;
            curl_multi_remove_handle(m, e);
            if (started < count) {
                started++;
                curl_multi_add_handle(m, e);
            } else {
                curl_easy_cleanup(e);
            }
        }
    }
    double secs = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%.6f %lld %.6f %ld\n", secs, bytes, cpu, failures);
    curl_multi_cleanup(m);
    return 0;
}

/*
 * The C side of reqqueue's benchmarks: the same workloads as benches/benches/reqqueue.rs,
 * on Debian's libtevent. Built and run by `cargo xtask bench`.
 *
 * usage: tevent_bench WORKLOAD N ROUNDS
 * prints: WORKLOAD <median ns per operation over ROUNDS>
 *
 * Workloads:
 *   bulk      N requests added at once, each finishing in its trigger
 *   one_add   one request at a time through tevent_queue_add
 *   one_opt   one request at a time through tevent_queue_add_optimize_empty
 *   enter     tevent_queue_wait_send on an empty queue, then release (an uncontended lock)
 *   proxy     N messages from another thread through tevent_thread_proxy_schedule
 *   pingpong  N round trips between two threads, each through a thread proxy
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <talloc.h>
#include <tevent.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct req_state {
	int unused;
};

static size_t done_count;

static void trigger_done(struct tevent_req *req, void *private_data)
{
	tevent_req_done(req);
}

/* A queue entry leaves when its request is freed, so free it here or the queue stalls. */
static void req_finished(struct tevent_req *req)
{
	done_count++;
	talloc_free(req);
}

static double bulk(struct tevent_context *ev, size_t n)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_queue *q = tevent_queue_create(mem, "bulk");
	done_count = 0;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct req_state *st;
		struct tevent_req *req = tevent_req_create(mem, &st, struct req_state);
		tevent_queue_add(q, ev, req, trigger_done, NULL);
		tevent_req_set_callback(req, req_finished, NULL);
	}
	while (done_count < n) {
		tevent_loop_once(ev);
	}
	double t = now_ns() - t0;
	talloc_free(mem);
	return t / n;
}

static double one_add(struct tevent_context *ev, size_t n)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_queue *q = tevent_queue_create(mem, "one");
	done_count = 0;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct req_state *st;
		struct tevent_req *req = tevent_req_create(mem, &st, struct req_state);
		tevent_queue_add(q, ev, req, trigger_done, NULL);
		tevent_req_set_callback(req, req_finished, NULL);
		while (done_count <= i) {
			tevent_loop_once(ev);
		}
	}
	double t = now_ns() - t0;
	talloc_free(mem);
	return t / n;
}

static double one_opt(struct tevent_context *ev, size_t n)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_queue *q = tevent_queue_create(mem, "opt");
	done_count = 0;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct req_state *st;
		struct tevent_req *req = tevent_req_create(mem, &st, struct req_state);
		/* The trigger runs inside the call when the queue is empty. */
		tevent_queue_add_optimize_empty(q, ev, req, trigger_done, NULL);
		if (!tevent_req_is_in_progress(req)) {
			done_count++;
			talloc_free(req);
		} else {
			tevent_req_set_callback(req, req_finished, NULL);
			while (done_count <= i) {
				tevent_loop_once(ev);
			}
		}
	}
	double t = now_ns() - t0;
	talloc_free(mem);
	return t / n;
}

static void entered(struct tevent_req *req)
{
	tevent_queue_wait_recv(req);
	done_count++;
	/* Releasing the queue is freeing the wait request. */
	talloc_free(req);
}

static double enter(struct tevent_context *ev, size_t n)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_queue *q = tevent_queue_create(mem, "lock");
	done_count = 0;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct tevent_req *req = tevent_queue_wait_send(mem, ev, q);
		tevent_req_set_callback(req, entered, NULL);
		while (done_count <= i) {
			tevent_loop_once(ev);
		}
	}
	double t = now_ns() - t0;
	talloc_free(mem);
	return t / n;
}

/* Cross-thread messages. */

static volatile size_t received;

static void on_message(struct tevent_context *ctx, struct tevent_immediate *im, void *private_data)
{
	received++;
}

struct producer {
	struct tevent_thread_proxy *tp;
	size_t n;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (size_t i = 0; i < p->n; i++) {
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		tevent_thread_proxy_schedule(p->tp, &im, on_message, NULL);
	}
	return NULL;
}

static double proxy(struct tevent_context *ev, size_t n)
{
	struct tevent_thread_proxy *tp = tevent_thread_proxy_create(ev);
	struct producer p = { tp, n };
	pthread_t t;
	received = 0;
	double t0 = now_ns();
	pthread_create(&t, NULL, produce, &p);
	while (received < n) {
		tevent_loop_once(ev);
	}
	double el = now_ns() - t0;
	pthread_join(t, NULL);
	talloc_free(tp);
	return el / n;
}

/* Ping-pong: A sends to B, B answers to A, N times. */

struct side {
	struct tevent_context *ev;
	struct tevent_thread_proxy *to_other;
	volatile size_t count;
	volatile int stop;
};

static struct side side_a, side_b;

static void on_pong(struct tevent_context *ctx, struct tevent_immediate *im, void *private_data)
{
	side_a.count++;
}

static void on_ping(struct tevent_context *ctx, struct tevent_immediate *im, void *private_data)
{
	side_b.count++;
	struct tevent_immediate *reply = tevent_create_immediate(NULL);
	tevent_thread_proxy_schedule(side_b.to_other, &reply, on_pong, NULL);
}

static void on_stop(struct tevent_context *ctx, struct tevent_immediate *im, void *private_data)
{
	side_b.stop = 1;
}

static void *run_b(void *arg)
{
	while (!side_b.stop) {
		tevent_loop_once(side_b.ev);
	}
	return NULL;
}

static double pingpong(struct tevent_context *ev, size_t n)
{
	side_a.ev = ev;
	side_a.count = 0;
	side_b.ev = tevent_context_init(NULL);
	side_b.count = 0;
	side_b.stop = 0;
	side_a.to_other = tevent_thread_proxy_create(side_b.ev);
	side_b.to_other = tevent_thread_proxy_create(side_a.ev);
	pthread_t t;
	pthread_create(&t, NULL, run_b, NULL);
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		tevent_thread_proxy_schedule(side_a.to_other, &im, on_ping, NULL);
		while (side_a.count <= i) {
			tevent_loop_once(ev);
		}
	}
	double el = now_ns() - t0;
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	tevent_thread_proxy_schedule(side_a.to_other, &im, on_stop, NULL);
	pthread_join(t, NULL);
	talloc_free(side_a.to_other);
	talloc_free(side_b.to_other);
	talloc_free(side_b.ev);
	return el / n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s WORKLOAD N ROUNDS\n", argv[0]);
		return 2;
	}
	const char *w = argv[1];
	size_t n = strtoull(argv[2], NULL, 10);
	int rounds = atoi(argv[3]);
	/* Required for thread proxies: contexts on the NULL talloc context, untracked. */
	talloc_disable_null_tracking();
	struct tevent_context *ev = tevent_context_init(NULL);
	double (*f)(struct tevent_context *, size_t) = NULL;
	if (!strcmp(w, "bulk")) f = bulk;
	else if (!strcmp(w, "one_add")) f = one_add;
	else if (!strcmp(w, "one_opt")) f = one_opt;
	else if (!strcmp(w, "enter")) f = enter;
	else if (!strcmp(w, "proxy")) f = proxy;
	else if (!strcmp(w, "pingpong")) f = pingpong;
	if (f == NULL || rounds < 1 || n < 1) {
		fprintf(stderr, "unknown workload %s\n", w);
		return 2;
	}
	double *t = calloc(rounds, sizeof(double));
	f(ev, n < 1000 ? n : 1000); /* warm up */
	for (int r = 0; r < rounds; r++) {
		t[r] = f(ev, n);
	}
	qsort(t, rounds, sizeof(double), cmp);
	printf("%s %.1f\n", w, t[rounds / 2]);
	talloc_free(ev);
	return 0;
}

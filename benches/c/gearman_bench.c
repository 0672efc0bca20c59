/*
 * The C side of jobclient's benchmarks: the same workloads as benches/benches/gearman.rs, on
 * Debian's libgearman, against the same job server. Run by that benchmark.
 *
 * usage: gearman_bench HOST PORT WORKLOAD JOBS IN_FLIGHT PAYLOAD_BYTES
 *        gearman_bench HOST PORT worker
 * prints: <ns per job> (a worker prints nothing and runs until killed)
 *
 * Workloads (function "bench_echo", answered by the benchmark's workers; background jobs go
 * to "bench_bg", which has no workers):
 *   fg   foreground jobs, IN_FLIGHT at a time as a task set (add_task + run_tasks)
 *   seq  foreground jobs one after another (gearman_client_do)
 *   bg   background submissions, IN_FLIGHT at a time as a task set
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libgearman/gearman.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The benchmark's C worker: answers bench_echo with its workload. */
static void *echo(gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret)
{
	(void)context;
	size_t size = gearman_job_workload_size(job);
	void *out = malloc(size ? size : 1);
	memcpy(out, gearman_job_workload(job), size);
	*result_size = size;
	*ret = GEARMAN_SUCCESS;
	return out;
}

static int work(const char *host, in_port_t port)
{
	gearman_worker_st worker;
	if (gearman_worker_create(&worker) == NULL) {
		fprintf(stderr, "gearman_worker_create failed\n");
		return 1;
	}
	if (gearman_worker_add_server(&worker, host, port) != GEARMAN_SUCCESS ||
	    gearman_worker_add_function(&worker, "bench_echo", 0, echo, NULL) != GEARMAN_SUCCESS) {
		fprintf(stderr, "worker: %s\n", gearman_worker_error(&worker));
		return 1;
	}
	for (;;) {
		gearman_return_t ret = gearman_worker_work(&worker);
		if (ret != GEARMAN_SUCCESS && ret != GEARMAN_IO_WAIT && ret != GEARMAN_NO_JOBS) {
			fprintf(stderr, "work: %s\n", gearman_worker_error(&worker));
			return 1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[3], "worker")) {
		return work(argv[1], (in_port_t)atoi(argv[2]));
	}
	if (argc != 7) {
		fprintf(stderr, "usage: %s HOST PORT WORKLOAD JOBS IN_FLIGHT PAYLOAD_BYTES\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	in_port_t port = (in_port_t)atoi(argv[2]);
	const char *w = argv[3];
	size_t jobs = strtoull(argv[4], NULL, 10);
	size_t in_flight = strtoull(argv[5], NULL, 10);
	size_t size = strtoull(argv[6], NULL, 10);
	char *payload = malloc(size + 1);
	memset(payload, 'x', size);

	gearman_client_st client;
	if (gearman_client_create(&client) == NULL) {
		fprintf(stderr, "gearman_client_create failed\n");
		return 1;
	}
	if (gearman_client_add_server(&client, host, port) != GEARMAN_SUCCESS) {
		fprintf(stderr, "add_server: %s\n", gearman_client_error(&client));
		return 1;
	}
	double t0 = now_ns();
	size_t done = 0;
	if (!strcmp(w, "seq")) {
		for (; done < jobs; done++) {
			size_t result_size;
			gearman_return_t ret;
			void *result = gearman_client_do(&client, "bench_echo", NULL, payload, size, &result_size, &ret);
			if (ret != GEARMAN_SUCCESS || result_size != size) {
				fprintf(stderr, "do: %s\n", gearman_client_error(&client));
				return 1;
			}
			free(result);
		}
	} else if (!strcmp(w, "fg") || !strcmp(w, "bg")) {
		int bg = !strcmp(w, "bg");
		while (done < jobs) {
			size_t batch = jobs - done < in_flight ? jobs - done : in_flight;
			for (size_t i = 0; i < batch; i++) {
				gearman_return_t ret;
				if (bg) {
					gearman_client_add_task_background(&client, NULL, NULL, "bench_bg", NULL, payload, size, &ret);
				} else {
					gearman_client_add_task(&client, NULL, NULL, "bench_echo", NULL, payload, size, &ret);
				}
				if (ret != GEARMAN_SUCCESS) {
					fprintf(stderr, "add_task: %s\n", gearman_client_error(&client));
					return 1;
				}
			}
			if (gearman_client_run_tasks(&client) != GEARMAN_SUCCESS) {
				fprintf(stderr, "run_tasks: %s\n", gearman_client_error(&client));
				return 1;
			}
			gearman_client_task_free_all(&client);
			done += batch;
		}
	} else {
		fprintf(stderr, "unknown workload %s\n", w);
		return 2;
	}
	double el = now_ns() - t0;
	printf("%.1f\n", el / jobs);
	gearman_client_free(&client);
	free(payload);
	return 0;
}

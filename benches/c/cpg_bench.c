/*
 * The C side of groupmsg's benchmarks, in the shape of corosync's cpgbench: one member of a
 * group multicasts COUNT messages of SIZE bytes as fast as flow control allows and counts its
 * own deliveries; or, for "rtt", sends one message at a time and waits for it to come back.
 * Run by benches/benches/groupmsg.rs against the same corosync as our backend.
 *
 * usage: cpg_bench throughput SIZE COUNT   prints: <messages per second>
 *        cpg_bench rtt SIZE COUNT          prints: <mean round trip in microseconds>
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <corosync/cpg.h>

static unsigned long delivered;

static void deliver(cpg_handle_t handle, const struct cpg_name *group, uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
	delivered++;
}

static void confchg(cpg_handle_t handle, const struct cpg_name *group,
		    const struct cpg_address *members, size_t n_members,
		    const struct cpg_address *left, size_t n_left,
		    const struct cpg_address *joined, size_t n_joined)
{
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s throughput|rtt SIZE COUNT\n", argv[0]);
		return 2;
	}
	size_t size = strtoull(argv[2], NULL, 10);
	unsigned long count = strtoul(argv[3], NULL, 10);
	cpg_callbacks_t callbacks = { deliver, confchg };
	cpg_handle_t handle;
	if (cpg_initialize(&handle, &callbacks) != CS_OK) {
		fprintf(stderr, "cpg_initialize failed\n");
		return 1;
	}
	struct cpg_name group;
	strcpy(group.value, "evstack-bench-c");
	group.length = strlen(group.value);
	if (cpg_join(handle, &group) != CS_OK) {
		fprintf(stderr, "cpg_join failed\n");
		return 1;
	}
	int fd;
	cpg_fd_get(handle, &fd);
	char *buf = calloc(1, size);
	struct iovec iov = { buf, size };
	double t0 = now();
	if (!strcmp(argv[1], "rtt")) {
		for (unsigned long i = 0; i < count; i++) {
			unsigned long want = delivered + 1;
			while (cpg_mcast_joined(handle, CPG_TYPE_AGREED, &iov, 1) == CS_ERR_TRY_AGAIN) {
				cpg_dispatch(handle, CS_DISPATCH_ALL);
			}
			while (delivered < want) {
				struct pollfd p = { fd, POLLIN, 0 };
				poll(&p, 1, -1);
				cpg_dispatch(handle, CS_DISPATCH_ALL);
			}
		}
		printf("%.2f\n", (now() - t0) / count * 1e6);
	} else {
		unsigned long sent = 0;
		while (sent < count) {
			cs_error_t r = cpg_mcast_joined(handle, CPG_TYPE_AGREED, &iov, 1);
			if (r == CS_OK) {
				sent++;
			} else if (r == CS_ERR_TRY_AGAIN) {
				cpg_dispatch(handle, CS_DISPATCH_ALL);
			} else {
				fprintf(stderr, "mcast failed: %d\n", r);
				return 1;
			}
		}
		while (delivered < count) {
			struct pollfd p = { fd, POLLIN, 0 };
			poll(&p, 1, -1);
			cpg_dispatch(handle, CS_DISPATCH_ALL);
		}
		printf("%.0f\n", count / (now() - t0));
	}
	cpg_finalize(handle);
	return 0;
}

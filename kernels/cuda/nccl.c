/*
 * nccl.c — NCCL for data parallel training, dlopened at its first use (as
 * cublas_lazy.c does for cuBLAS), so that libgrove neither links it nor
 * needs its header: the few types of NCCL's stable C ABI it uses are
 * declared here. A process without libnccl fails grove_dist_init with a
 * clear message; nothing else needs it.
 *
 * The unique id travels through a file: rank 0 writes it to path + ".tmp"
 * and renames it over path (so no reader sees half an id); the other ranks
 * poll for the file.
 */
#include "context.h"
#include "dist_nccl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* NCCL's ABI (nccl.h, stable across 2.x). */
typedef struct { char internal[128]; } nccl_id;
typedef struct nccl_comm *nccl_comm_t;
typedef int nccl_result;
enum { NCCL_SUCCESS = 0, NCCL_UINT8 = 1, NCCL_FLOAT32 = 7, NCCL_SUM = 0 };

static struct {
    void *lib;
    nccl_result (*get_unique_id)(nccl_id *);
    nccl_result (*comm_init_rank)(nccl_comm_t *, int, nccl_id, int);
    nccl_result (*comm_destroy)(nccl_comm_t);
    nccl_result (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm_t, cudaStream_t);
    nccl_result (*broadcast)(const void *, void *, size_t, int, int, nccl_comm_t, cudaStream_t);
    const char *(*error_string)(nccl_result);
} api;
static nccl_comm_t comm;

static grove_status load(void)
{
    if (api.lib) return 0;
    static const char *const names[] = {"libnccl.so.2", "libnccl.so", "/usr/local/cuda/lib64/libnccl.so.2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !api.lib; i++)
        api.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!api.lib) return gv_fail("dist: cannot load libnccl.so.2 (install NCCL or put it on LD_LIBRARY_PATH): %s", dlerror());
    *(void **)&api.get_unique_id = dlsym(api.lib, "ncclGetUniqueId");
    *(void **)&api.comm_init_rank = dlsym(api.lib, "ncclCommInitRank");
    *(void **)&api.comm_destroy = dlsym(api.lib, "ncclCommDestroy");
    *(void **)&api.all_reduce = dlsym(api.lib, "ncclAllReduce");
    *(void **)&api.broadcast = dlsym(api.lib, "ncclBroadcast");
    *(void **)&api.error_string = dlsym(api.lib, "ncclGetErrorString");
    if (!api.get_unique_id || !api.comm_init_rank || !api.comm_destroy || !api.all_reduce || !api.broadcast) {
        dlclose(api.lib);
        api.lib = NULL;
        return gv_fail("dist: libnccl lacks the functions grove needs (ncclCommInitRank, ncclAllReduce, ...)");
    }
    return 0;
}

static grove_status check(nccl_result r, const char *what)
{
    if (r == NCCL_SUCCESS) return 0;
    return gv_fail("dist: %s failed: %s (NCCL error %d)", what, api.error_string ? api.error_string(r) : "?", r);
}

static grove_status write_id(const char *path, const nccl_id *id)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return gv_fail("dist: id file path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return gv_fail("dist: cannot write the NCCL id to %s", tmp);
    size_t w = fwrite(id, 1, sizeof *id, f);
    int c = fclose(f);
    if (w != sizeof *id || c != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return gv_fail("dist: cannot write the NCCL id to %s", path);
    }
    return 0;
}

static grove_status read_id(const char *path, nccl_id *id)
{
    /* Rank 0 may start later than this one: wait for its file. */
    for (int tries = 0; tries < 3000; tries++) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t r = fread(id, 1, sizeof *id, f);
            fclose(f);
            if (r == sizeof *id) return 0;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return gv_fail("dist: no NCCL id appeared in %s within 300 s (is rank 0 running with the same GROVE_NCCL_ID_FILE?)",
                   path);
}

grove_status gv_nccl_init(int32_t rank, int32_t world, const char *id_file)
{
    if (load()) return -1;
    if (!id_file || !*id_file) return gv_fail("dist: world size %d needs an id file (GROVE_NCCL_ID_FILE)", world);
    nccl_id id;
    memset(&id, 0, sizeof id);
    if (rank == 0) {
        if (check(api.get_unique_id(&id), "ncclGetUniqueId") || write_id(id_file, &id)) return -1;
    } else if (read_id(id_file, &id)) return -1;
    /* Create grove's stream (and so the device context) before NCCL binds to the device. */
    (void)gv_cuda_stream();
    return check(api.comm_init_rank(&comm, world, id, rank), "ncclCommInitRank");
}

static int nccl_type(int32_t dtype) { return dtype == GROVE_U8 ? NCCL_UINT8 : NCCL_FLOAT32; }

static grove_status sync_stream(const char *what)
{
    cudaError_t e = cudaStreamSynchronize(gv_cuda_stream());
    if (e != cudaSuccess) return gv_fail("dist: %s: %s", what, cudaGetErrorString(e));
    return 0;
}

grove_status gv_nccl_all_reduce_sum(void *data, int64_t count, int32_t dtype)
{
    if (!comm) return gv_fail("dist: all_reduce before grove_dist_init");
    if (check(api.all_reduce(data, data, (size_t)count, nccl_type(dtype), NCCL_SUM, comm, gv_cuda_stream()),
              "ncclAllReduce"))
        return -1;
    return sync_stream("all_reduce");
}

grove_status gv_nccl_broadcast(void *data, int64_t count, int32_t dtype, int32_t root)
{
    if (!comm) return gv_fail("dist: broadcast before grove_dist_init");
    if (check(api.broadcast(data, data, (size_t)count, nccl_type(dtype), root, comm, gv_cuda_stream()),
              "ncclBroadcast"))
        return -1;
    return sync_stream("broadcast");
}

grove_status gv_nccl_finalize(void)
{
    if (!comm) return 0;
    nccl_result r = api.comm_destroy(comm);
    comm = NULL;
    return check(r, "ncclCommDestroy");
}

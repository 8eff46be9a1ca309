/* A fake libnvidia-ml.so.1: the NVML entry points nvidia-ml-py (pynvml) calls for fwsetup, answering from a
 * scenario file named by FAKE_NVML_SCENARIO. Built by tests/nvml_fake/__init__.py with the system C compiler.
 *
 * Scenario file: one `key=value` a line, `#` comments. Keys:
 *   init=ok | <NVML error code> | hang | segv     what nvmlInit(WithFlags) / nvmlInit_v2 does
 *   driver=580.82.07                              nvmlSystemGetDriverVersion
 *   cuda=13000                                    nvmlSystemGetCudaDriverVersion(_v2) (13.0 -> 13000)
 *   count=N                                       nvmlDeviceGetCount_v2
 *   nvswitch=1                                    every GPU's active NVLinks end at an NVSwitch; P2P over NVLink ok
 *   topology=40                                   nvmlDeviceGetTopologyCommonAncestor level between any two GPUs
 *   gpuI.name= .uuid= .memory=<bytes> .cc=9.0 .mig=0|1 .pci=00000000:18:00.0 .nvlinks=<active links>
 *   gpuI.open=<code>                              nvmlDeviceGetHandleByIndex_v2 fails with that code
 *   gpuI.fail=<code>                              every query on the opened handle fails with that code
 *   stdout_lines=N                                nvmlInit prints N lines of noise on stdout first (a chatty driver)
 *   daemon=S                                      nvmlInit forks a helper that keeps the caller's stdout/stderr open
 *                                                 for S seconds (its pid goes to FAKE_NVML_DAEMON_PIDFILE)
 *   gpuI.migJ.name= .uuid=MIG-… .memory=<bytes>    MIG device J (0..6) of GPU I in MIG mode (an empty slot: none)
 * FAKE_NVML_LOG=FILE appends the name of every entry point called, one a line.
 * Compile with -DOMIT_<symbol> to leave an entry point out (an older driver): pynvml then raises
 * NVMLError_FunctionNotFound for it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXGPU 16
#define MAXMIG 7 /* nvmlDeviceGetMaxMigDeviceCount of an A100/H100 */
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_UNKNOWN 999

typedef struct {
    char name[96], uuid[96], pci[32];
    unsigned long long memory;
    int cc_major, cc_minor, mig, nvlinks, open_err, fail;
} gpu_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

static gpu_t gpus[MAXGPU];
static gpu_t migs[MAXGPU][MAXMIG]; /* a MIG device answers the same queries (name, uuid, memory) as a GPU */
static int count, cuda = 13000, nvswitch, topology = 40, initialised;
static char driver[96] = "580.82.07";

static void trace(const char *fn) {
    const char *path = getenv("FAKE_NVML_LOG");
    FILE *f;
    if (!path || !*path || !(f = fopen(path, "a"))) return;
    fprintf(f, "%s\n", fn);
    fclose(f);
}

static void copy(char *dst, const char *src, size_t n) {
    strncpy(dst, src, n - 1);
    dst[n - 1] = 0;
}

static int load(void) {
    const char *path = getenv("FAKE_NVML_SCENARIO");
    char line[512];
    FILE *f;
    int init = 0, daemon = 0;
    long stdout_lines = 0;
    if (!path || !(f = fopen(path, "r"))) return NVML_ERROR_UNKNOWN;
    memset(gpus, 0, sizeof gpus);
    memset(migs, 0, sizeof migs);
    count = 0;
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '='), *key = line, *val, *nl;
        int i, j;
        if (line[0] == '#' || !eq) continue;
        *eq = 0;
        val = eq + 1;
        if ((nl = strpbrk(val, "\r\n"))) *nl = 0;
        if (!strcmp(key, "init")) {
            if (!strcmp(val, "hang")) init = -1;
            else if (!strcmp(val, "segv")) init = -2;
            else init = strcmp(val, "ok") ? atoi(val) : 0;
        } else if (!strcmp(key, "driver")) copy(driver, val, sizeof driver);
        else if (!strcmp(key, "cuda")) cuda = atoi(val);
        else if (!strcmp(key, "count")) count = atoi(val) > MAXGPU ? MAXGPU : atoi(val);
        else if (!strcmp(key, "nvswitch")) nvswitch = atoi(val);
        else if (!strcmp(key, "topology")) topology = atoi(val);
        else if (!strcmp(key, "stdout_lines")) stdout_lines = atol(val);
        else if (!strcmp(key, "daemon")) daemon = atoi(val);
        else if (sscanf(key, "gpu%d.mig%d.", &i, &j) == 2 && i >= 0 && i < MAXGPU && j >= 0 && j < MAXMIG) {
            gpu_t *m = &migs[i][j];
            const char *field = strchr(strchr(key, '.') + 1, '.') + 1;
            if (!strcmp(field, "name")) copy(m->name, val, sizeof m->name);
            else if (!strcmp(field, "uuid")) copy(m->uuid, val, sizeof m->uuid);
            else if (!strcmp(field, "memory")) m->memory = strtoull(val, NULL, 10);
        } else if (sscanf(key, "gpu%d.", &i) == 1 && i >= 0 && i < MAXGPU) {
            gpu_t *g = &gpus[i];
            const char *field = strchr(key, '.') + 1;
            if (!strcmp(field, "name")) copy(g->name, val, sizeof g->name);
            else if (!strcmp(field, "uuid")) copy(g->uuid, val, sizeof g->uuid);
            else if (!strcmp(field, "pci")) copy(g->pci, val, sizeof g->pci);
            else if (!strcmp(field, "memory")) g->memory = strtoull(val, NULL, 10);
            else if (!strcmp(field, "cc")) sscanf(val, "%d.%d", &g->cc_major, &g->cc_minor);
            else if (!strcmp(field, "mig")) g->mig = atoi(val);
            else if (!strcmp(field, "nvlinks")) g->nvlinks = atoi(val);
            else if (!strcmp(field, "open")) g->open_err = atoi(val);
            else if (!strcmp(field, "fail")) g->fail = atoi(val);
        }
    }
    fclose(f);
    for (long n = 0; n < stdout_lines; n++) printf("fake NVML: init noise line %ld\n", n);
    if (daemon > 0) {
        pid_t pid = fork();
        if (pid == 0) {  /* the helper: holds every descriptor it inherited (the caller's pipes) */
            const char *pidfile = getenv("FAKE_NVML_DAEMON_PIDFILE");
            FILE *pf;
            if (pidfile && *pidfile && (pf = fopen(pidfile, "w"))) { fprintf(pf, "%d\n", (int)getpid()); fclose(pf); }
            sleep((unsigned int)daemon);
            _exit(0);
        }
    }
    if (init == -1) for (;;) pause();  /* a driver stuck in the kernel: nvmlInit never returns */
    if (init == -2) raise(SIGSEGV);
    if (init == 0) initialised = 1;
    return init;
}

/* The handle is a pointer to the GPU's slot: pynvml passes it back unchanged. */
static int gpu_of(void *h, gpu_t **g) {
    gpu_t *p = (gpu_t *)h;
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (p >= &migs[0][0] && p < &migs[0][0] + MAXGPU * MAXMIG) { *g = p; return NVML_SUCCESS; }
    if (p < gpus || p >= gpus + count) return NVML_ERROR_INVALID_ARGUMENT;
    *g = p;
    return p->fail;
}

#define GPU_OR_RETURN(h, g) do { int _r = gpu_of((h), &(g)); if (_r) return _r; } while (0)

int nvmlInitWithFlags(unsigned int flags) { (void)flags; trace("nvmlInitWithFlags"); return load(); }
int nvmlInit_v2(void) { trace("nvmlInit_v2"); return load(); }
int nvmlInit(void) { trace("nvmlInit"); return load(); }
int nvmlShutdown(void) { trace("nvmlShutdown"); initialised = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(int result) {
    trace("nvmlErrorString");
    switch (result) {
    case 0: return "Success";
    case 4: return "Insufficient Permissions";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 999: return "Unknown Error (fake NVML: FAKE_NVML_SCENARIO is not set or cannot be read)";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    trace("nvmlSystemGetDriverVersion");
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (strlen(driver) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    copy(buf, driver, len);
    return NVML_SUCCESS;
}

int nvmlSystemGetCudaDriverVersion(int *v) {
    trace("nvmlSystemGetCudaDriverVersion");
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *v = cuda;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlSystemGetCudaDriverVersion_v2
int nvmlSystemGetCudaDriverVersion_v2(int *v) {
    trace("nvmlSystemGetCudaDriverVersion_v2");
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *v = cuda;
    return NVML_SUCCESS;
}
#endif

int nvmlDeviceGetCount_v2(unsigned int *n) {
    trace("nvmlDeviceGetCount_v2");
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *n = (unsigned int)count;
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
    trace("nvmlDeviceGetHandleByIndex_v2");
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (i >= (unsigned int)count) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpus[i].open_err) return gpus[i].open_err;
    *h = &gpus[i];
    return NVML_SUCCESS;
}

int nvmlDeviceGetName(void *h, char *buf, unsigned int len) {
    gpu_t *g;
    trace("nvmlDeviceGetName");
    GPU_OR_RETURN(h, g);
    copy(buf, g->name, len);
    return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len) {
    gpu_t *g;
    trace("nvmlDeviceGetUUID");
    GPU_OR_RETURN(h, g);
    copy(buf, g->uuid, len);
    return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    gpu_t *g;
    trace("nvmlDeviceGetMemoryInfo");
    GPU_OR_RETURN(h, g);
    m->total = g->memory;
    m->used = g->memory / 100;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
int nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    gpu_t *g;
    trace("nvmlDeviceGetMemoryInfo_v2");
    GPU_OR_RETURN(h, g);
    if (m->version != 0x02000028) return 25; /* NVML_ERROR_ARGUMENT_VERSION_MISMATCH */
    m->total = g->memory;
    m->reserved = g->memory / 200;
    m->used = g->memory / 100;
    m->free = m->total - m->reserved - m->used;
    return NVML_SUCCESS;
}
#endif

int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    gpu_t *g;
    trace("nvmlDeviceGetCudaComputeCapability");
    GPU_OR_RETURN(h, g);
    *major = g->cc_major;
    *minor = g->cc_minor;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetMigMode
int nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
    gpu_t *g;
    trace("nvmlDeviceGetMigMode");
    GPU_OR_RETURN(h, g);
    if (g->cc_major < 8) return NVML_ERROR_NOT_SUPPORTED; /* MIG: A100 and later */
    *current = *pending = (unsigned int)g->mig;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxMigDeviceCount
int nvmlDeviceGetMaxMigDeviceCount(void *h, unsigned int *n) {
    gpu_t *g;
    trace("nvmlDeviceGetMaxMigDeviceCount");
    GPU_OR_RETURN(h, g);
    if (g < gpus || g >= gpus + count) return NVML_ERROR_INVALID_ARGUMENT; /* a MIG device has none */
    *n = g->mig ? MAXMIG : 0;
    return NVML_SUCCESS;
}

int nvmlDeviceGetMigDeviceHandleByIndex(void *h, unsigned int index, void **mig) {
    gpu_t *g;
    trace("nvmlDeviceGetMigDeviceHandleByIndex");
    GPU_OR_RETURN(h, g);
    if (g < gpus || g >= gpus + count || index >= MAXMIG) return NVML_ERROR_INVALID_ARGUMENT;
    if (!g->mig || !migs[g - gpus][index].uuid[0]) return NVML_ERROR_NOT_FOUND;
    *mig = &migs[g - gpus][index];
    return NVML_SUCCESS;
}
#endif

static void fill_pci(nvmlPciInfo_t *p, const char *bus_id) {
    unsigned int dom = 0, bus = 0, dev = 0;
    memset(p, 0, sizeof *p);
    copy(p->busId, bus_id, sizeof p->busId);
    copy(p->busIdLegacy, bus_id + (strlen(bus_id) > 12 ? 4 : 0), sizeof p->busIdLegacy);
    sscanf(bus_id, "%x:%x:%x", &dom, &bus, &dev);
    p->domain = dom;
    p->bus = bus;
    p->device = dev;
    p->pciDeviceId = 0x233010de;
}

int nvmlDeviceGetPciInfo_v3(void *h, nvmlPciInfo_t *p) {
    gpu_t *g;
    trace("nvmlDeviceGetPciInfo_v3");
    GPU_OR_RETURN(h, g);
    fill_pci(p, g->pci);
    return NVML_SUCCESS;
}

int nvmlDeviceGetNvLinkState(void *h, unsigned int link, unsigned int *active) {
    gpu_t *g;
    trace("nvmlDeviceGetNvLinkState");
    GPU_OR_RETURN(h, g);
    if (!g->nvlinks) return NVML_ERROR_NOT_SUPPORTED;
    if (link >= 18) return NVML_ERROR_INVALID_ARGUMENT;
    *active = link < (unsigned int)g->nvlinks;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetNvLinkRemotePciInfo_v2
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void *h, unsigned int link, nvmlPciInfo_t *p) {
    gpu_t *g;
    char bus[32];
    trace("nvmlDeviceGetNvLinkRemotePciInfo_v2");
    GPU_OR_RETURN(h, g);
    if (link >= (unsigned int)g->nvlinks) return NVML_ERROR_INVALID_ARGUMENT;
    /* NVSwitch systems: each link ends at one of four switches, never at the peer GPU */
    snprintf(bus, sizeof bus, "00000000:%02X:00.0", 0xA0 + (link % 4));
    fill_pci(p, bus);
    return NVML_SUCCESS;
}
#endif

int nvmlDeviceGetTopologyCommonAncestor(void *a, void *b, int *level) {
    gpu_t *ga, *gb;
    trace("nvmlDeviceGetTopologyCommonAncestor");
    GPU_OR_RETURN(a, ga);
    GPU_OR_RETURN(b, gb);
    *level = topology;
    return NVML_SUCCESS;
}

int nvmlDeviceGetP2PStatus(void *a, void *b, int index, int *status) {
    gpu_t *ga, *gb;
    trace("nvmlDeviceGetP2PStatus");
    GPU_OR_RETURN(a, ga);
    GPU_OR_RETURN(b, gb);
    /* NVML_P2P_CAPS_INDEX_NVLINK = 2; NVML_P2P_STATUS_OK = 0, NOT_SUPPORTED = 5 */
    *status = (index == 2 && nvswitch && ga->nvlinks && gb->nvlinks) ? 0 : 5;
    return NVML_SUCCESS;
}

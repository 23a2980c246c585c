/*
 * fuzz_pth.c - libFuzzer target for the PyTorch checkpoint reader: the
 * input is a whole .pth file (zip or legacy format), read twice: from
 * memory (records copied out through libzip), and from a mapped file, as
 * st3d_weights_read reads it, where stored records are used in place
 * (pth_zip_map.c: the libzip source over the mapping, the located record,
 * its CRC).  So the zip layer (libzip), the legacy storage index, the
 * restricted unpickler, the state-dict search and the view materialization
 * are all exercised.
 */
#define _GNU_SOURCE /* memfd_create */
#include "io/pth.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st3d_error err;
    st3d_tensor_map *map = NULL;
    if (st3d_pth_read_mem(data, size, "fuzz.pth", &map, &err) == 0) st3d_tensor_map_free(map);
    int fd = memfd_create("fuzz.pth", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        st3d_src s;
        if (st3d_src_map(&s, path, &err) == 0) {
            map = NULL;
            if (st3d_pth_read_src(&s, &map, &err) == 0) st3d_tensor_map_free(map);
            st3d_src_close(&s);
        }
    }
    close(fd);
    return 0;
}

/* test_backend.c — the kernel table the op front-ends dispatch through:
 * a CPU tensor gets the CPU table, which has an entry for every kernel of
 * the list (kernels/kernels.def). */
#include "helpers.h"

#include "backend.h"

#include <stddef.h>

Test(backend, cpu_tensor_gets_the_cpu_table)
{
    grove_tensor *t = grove_tensor_zeros(1, (int64_t[]){3}, GROVE_F32, GROVE_CPU);
    cr_assert_not_null(t, "%s", grove_last_error());
    const gv_kernels *k = gv_kernels_for("test", t);
    cr_assert_eq(k, &gv_cpu_kernels);
    cr_assert_eq(k->device, GROVE_CPU);
    cr_assert_eq(gv_kernels_check(k), 0);
    grove_tensor_release(t);
}

Test(backend, every_cpu_entry_is_set)
{
    /* Every kernel of the list has a CPU kernel behind its entry. */
    cr_assert_not_null(gv_cpu_kernels.take_error);
#define GV_KERNEL(ret, name, params) cr_assert_not_null(gv_cpu_kernels.name, "CPU table entry " #name " is NULL");
#include "../../kernels/kernels.def"
}

Test(backend, kernels_by_device_code)
{
    cr_assert_eq(gv_kernels_on("test", GROVE_CPU), &gv_cpu_kernels);
    const gv_kernels *k = gv_kernels_on("someop", GROVE_CUDA);
    if (k) cr_assert_eq(k->device, GROVE_CUDA);
    else expect_error("someop: this build has no CUDA backend");
    cr_assert_null(gv_kernels_on("someop", 7));
    expect_error("someop: no device 7");
}

Test(backend, other_devices_are_named_in_the_error)
{
    grove_tensor fake = {0};
    fake.ndim = 1;
    fake.shape[0] = 4;
    fake.device = GROVE_CUDA;
    const gv_kernels *k = gv_kernels_for("someop", &fake);
    if (k) {
        /* a CUDA build: its own table */
        cr_assert_eq(k->device, GROVE_CUDA);
        cr_assert_neq(k, &gv_cpu_kernels);
    } else {
        expect_error("someop: this build has no CUDA backend");
    }
    fake.device = 7;
    cr_assert_null(gv_kernels_for("someop", &fake));
    expect_error("someop: no device 7");
}

Test(backend, missing_entry_is_an_error)
{
    gv_kernels k = gv_cpu_kernels;
    k.device = GROVE_CUDA;
    k.take_error = NULL;
    k.unary = NULL;
    float x = 1, y = 0;
    cr_assert_eq(GV_KCALL("relu", &k, unary, GROVE_RELU, &x, &y, 1), -1);
    expect_error("relu: no CUDA kernel for unary");
    cr_assert_eq(GV_KCALL("neg", &gv_cpu_kernels, unary, GROVE_NEG, &x, &y, 1), 0);
    cr_assert_eq(y, -1.0f);
}

/* A program built against an installed grove (pkg-config or find_package):
 * makes a tensor and prints its element count. */
#include <grove.h>
#include <stdio.h>

int main(void)
{
    int64_t shape[2] = { 3, 4 };
    grove_tensor *t = grove_tensor_full(2, shape, 1.5, GROVE_F32, GROVE_CPU);
    if (!t) {
        fprintf(stderr, "hello: %s\n", grove_last_error());
        return 1;
    }
    double sum = 0, v[12];
    if (grove_tensor_read_doubles(t, v, 12)) return 1;
    for (int i = 0; i < 12; i++) sum += v[i];
    printf("grove %s numel %lld sum %g\n", grove_version(), (long long)grove_tensor_numel(t), sum);
    grove_tensor_release(t);
    return 0;
}

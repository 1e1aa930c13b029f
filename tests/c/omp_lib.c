/* libomp_lib.so: a stand-in for a Python extension built with -fopenmp
 * (scikit-learn, LightGBM, PyTorch's CPU kernels), loaded by
 * tests/py/omp_ext.py with ctypes. omp_sum(n) runs one parallel region of
 * n threads and returns 1 + 2 + ... + n. */
#include <omp.h>

long omp_sum(int n)
{
    long sum = 0;
#pragma omp parallel num_threads(n) reduction(+ : sum)
    sum += omp_get_thread_num() + 1;
    return sum;
}

/* The machine's floors for the resync benchmark (bench/floors.mjs compiles and runs this):
 *   floor compare A B THREADS  read both files with pread in 256 KiB windows on THREADS
 *                              threads and count the 4 KiB blocks that differ;
 *   floor read A THREADS       read one file the same way, touching one word per cache line;
 *   floor writes A COUNT       write COUNT 4 KiB blocks at random places (seeded, sorted) with
 *                              pwrite, then fdatasync: what a resync's writes cost alone.
 * Prints the seconds taken (and the differing blocks or a checksum of the words touched; for
 * writes, the seconds of the pwrites and of the fdatasync). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WINDOW (256 * 1024)
#define BLOCK 4096

struct part { int a, b; off_t from, to; uint64_t result; };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static size_t read_window(int fd, uint8_t *buffer, off_t at, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd, buffer + done, length - done, at + (off_t)done);
    if (got <= 0) { perror("pread"); exit(2); }
    done += (size_t)got;
  }
  return done;
}

static void *run(void *arg) {
  struct part *p = arg;
  uint8_t *x = aligned_alloc(BLOCK, WINDOW), *y = aligned_alloc(BLOCK, WINDOW);
  for (off_t at = p->from; at < p->to; at += WINDOW) {
    size_t length = (size_t)(p->to - at < WINDOW ? p->to - at : WINDOW);
    read_window(p->a, x, at, length);
    if (p->b >= 0) {
      read_window(p->b, y, at, length);
      for (size_t o = 0; o < length; o += BLOCK) p->result += memcmp(x + o, y + o, length - o < BLOCK ? length - o : BLOCK) != 0;
    } else {
      for (size_t o = 0; o + 8 <= length; o += 64) { uint64_t word; memcpy(&word, x + o, 8); p->result += word; }
    }
  }
  free(x);
  free(y);
  return NULL;
}

static int cmp_offsets(const void *x, const void *y) {
  off_t a = *(const off_t *)x, b = *(const off_t *)y;
  return a < b ? -1 : a > b;
}

/* floor writes A COUNT */
static int writes(const char *path, int count) {
  int fd = open(path, O_RDWR);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || count < 1 || st.st_size < BLOCK) { perror("open"); return 2; }
  off_t *at = malloc(sizeof(off_t) * (size_t)count);
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < count; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    at[i] = (off_t)(s % (uint64_t)(st.st_size / BLOCK)) * BLOCK;
  }
  qsort(at, (size_t)count, sizeof(off_t), cmp_offsets);
  uint8_t *block = aligned_alloc(BLOCK, BLOCK);
  double started = now();
  for (int i = 0; i < count; i++) {
    memset(block, (int)(s + (uint64_t)i), BLOCK);
    if (pwrite(fd, block, BLOCK, at[i]) != BLOCK) { perror("pwrite"); return 2; }
  }
  double written = now();
  if (fdatasync(fd) != 0) { perror("fdatasync"); return 2; }
  printf("%.6f %.6f\n", written - started, now() - written);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "writes") == 0) return writes(argv[2], atoi(argv[3]));
  int compare = argc == 5 && strcmp(argv[1], "compare") == 0;
  if (!compare && !(argc == 4 && strcmp(argv[1], "read") == 0)) {
    fprintf(stderr, "usage: floor compare A B THREADS | floor read A THREADS | floor writes A COUNT\n");
    return 2;
  }
  int a = open(argv[2], O_RDONLY), b = compare ? open(argv[3], O_RDONLY) : -1;
  int threads = atoi(argv[compare ? 4 : 3]);
  struct stat st;
  if (a < 0 || (compare && b < 0) || fstat(a, &st) != 0 || threads < 1 || threads > 64) { perror("open"); return 2; }
  struct part parts[64];
  pthread_t ids[64];
  off_t per = (st.st_size / threads / WINDOW + 1) * WINDOW;
  double started = now();
  for (int i = 0; i < threads; i++) {
    off_t from = per * i < st.st_size ? per * i : st.st_size, to = per * (i + 1) < st.st_size ? per * (i + 1) : st.st_size;
    parts[i] = (struct part){ a, b, from, to, 0 };
    pthread_create(&ids[i], NULL, run, &parts[i]);
  }
  uint64_t total = 0;
  for (int i = 0; i < threads; i++) { pthread_join(ids[i], NULL); total += parts[i].result; }
  printf("%.6f %llu\n", now() - started, (unsigned long long)total);
  return 0;
}

// What a kernel handler returns: an errno code, without the syscall or path.
// SimHost adds those when it turns the failure into a Node-style error, so the
// models (pci.ts, net.ts, ...) stay free of file-level concerns.
export class KernelError extends Error {
  constructor(
    readonly code: string,
    readonly detail?: string,
  ) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'KernelError';
  }
}

export function kernelError(code: string, detail?: string): KernelError {
  return new KernelError(code, detail);
}

// Large payloads are gzip-compressed on their way to Temporal. A NodeENI with
// thousands of attachments carries thousands of similar JSON records (its
// entity state across continue-as-new, the ENIs a pass lists); compressed they
// stay far below Temporal's blob-size warning (512 KiB) and error (2 MiB).
// Small payloads, nearly all of them, stay plain JSON, readable in the UI.
// Every worker and client of this system uses it (see dataConverter below).
import { gunzipSync, gzipSync } from 'node:zlib';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
// CommonJS module: its namespace comes as the default export under Node's ESM loader.
import proto from '@temporalio/proto';

export const GZIP_ENCODING = 'binary/gzip';
/** Payloads larger than this (bytes of data) are compressed. */
export const COMPRESS_ABOVE_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ProtoPayload = proto.temporal.api.common.v1.Payload;

export class LargePayloadCodec implements PayloadCodec {
  constructor(private readonly thresholdBytes = COMPRESS_ABOVE_BYTES) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if ((p.data?.length ?? 0) <= this.thresholdBytes) return p;
      // The whole payload (its metadata too) is compressed, so decoding restores it exactly.
      return { metadata: { encoding: encoder.encode(GZIP_ENCODING) }, data: gzipSync(ProtoPayload.encode(p).finish()) };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding;
      if (!encoding || decoder.decode(encoding) !== GZIP_ENCODING || !p.data) return p;
      return ProtoPayload.decode(gunzipSync(p.data)) as Payload;
    });
  }
}

/** The data converter of every worker, client and replayer of this system. */
export const dataConverter: DataConverter = { payloadCodecs: [new LargePayloadCodec()] };

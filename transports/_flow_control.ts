// Copyright 2026 the denio authors. MIT license.
// Write-buffer watermarks, asyncio's _FlowControlMixin arithmetic in one place
// for every writing transport (stream, pipe, datagram).

import { describe } from "./_validate.ts";

/** Default high watermark: 64 KiB, as asyncio. */
export const DEFAULT_HIGH_WATER = 64 * 1024;

/** The limits accepted by `setWriteBufferLimits`. */
export interface WriteBufferLimits {
  /** Pause the protocol when the buffer grows strictly over this many bytes. */
  high?: number;
  /** Resume the protocol when the buffer drains to this many bytes or fewer. */
  low?: number;
}

function checkLimit(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot set write buffer limits as ${name} is not a number: current value is ${
        describe(value)
      }`,
    );
  }
  if (Number.isNaN(value) || value < 0) {
    throw new RangeError(
      `Cannot set write buffer limits as ${name} is negative or NaN: current value is ${value}`,
    );
  }
  return value;
}

/**
 * Tracks the watermarks and whether the protocol was told to pause. The owner
 * reports the buffer size after each change; the answers say when to call
 * `pauseWriting` and `resumeWriting`, each exactly once per crossing.
 */
export class FlowControl {
  high: number = DEFAULT_HIGH_WATER;
  low: number = DEFAULT_HIGH_WATER / 4;
  paused = false;

  /**
   * asyncio's rules: high alone gives low = high / 4, low alone gives
   * high = 4 * low, neither gives the defaults; high < low is a RangeError.
   */
  setLimits(limits: WriteBufferLimits | undefined): void {
    if (
      limits !== undefined && (limits === null || typeof limits !== "object")
    ) {
      throw new TypeError(
        `Cannot set write buffer limits as limits is not an object: current value is ${
          describe(limits)
        }`,
      );
    }
    let high = checkLimit(limits?.high, "high");
    let low = checkLimit(limits?.low, "low");
    if (high === undefined) {
      high = low === undefined ? DEFAULT_HIGH_WATER : 4 * low;
    }
    if (low === undefined) low = Math.floor(high / 4);
    if (high < low) {
      throw new RangeError(
        `Cannot set write buffer limits as high is less than low: current value is high=${high}, low=${low}`,
      );
    }
    this.high = high;
    this.low = low;
  }

  /** True once when `size` goes strictly over the high watermark. */
  shouldPause(size: number): boolean {
    if (this.paused || size <= this.high) return false;
    this.paused = true;
    return true;
  }

  /** True once when `size` drains to the low watermark or below. */
  shouldResume(size: number): boolean {
    if (!this.paused || size > this.low) return false;
    this.paused = false;
    return true;
  }
}

// Heartbeats on behalf of every activity scheduled with a heartbeat timeout.
// A worker that dies mid-call is then noticed within that timeout instead of
// the much longer Start-To-Close, and the activity is retried elsewhere; the
// activities themselves stay plain async functions.
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptors } from '@temporalio/worker';

export function autoHeartbeat(ctx: Context): ActivityInterceptors {
  return {
    inbound: {
      async execute(input, next) {
        const timeout = ctx.info.heartbeatTimeoutMs;
        if (!timeout) return next(input);
        const timer = setInterval(() => ctx.heartbeat(), Math.max(200, Math.floor(timeout / 3)));
        try {
          return await next(input);
        } finally {
          clearInterval(timer);
        }
      },
    },
  };
}

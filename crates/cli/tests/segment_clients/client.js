// Drives Lifecycle with Segment's @segment/analytics-node, unchanged:
// identify, orders (one re-sent under a new messageId), batched flush.
const { Analytics } = require('@segment/analytics-node')

const analytics = new Analytics({
  writeKey: process.env.WRITE_KEY,
  host: process.env.HOST,
  maxEventsInBatch: 3,
  flushInterval: 200,
  maxRetries: 1,
})
let failed = false
analytics.on('error', (e) => { console.error(e); failed = true })

analytics.identify({ userId: 'node-1', traits: { email: 'node@example.com' }, timestamp: new Date('2023-11-01T09:00:00Z') })
analytics.track({ userId: 'node-1', event: 'Order Completed', properties: { order_id: 'n-o1', revenue: 25 }, timestamp: new Date('2023-11-02T10:00:00Z') })
analytics.track({ userId: 'node-1', event: 'Order Completed', properties: { order_id: 'n-o2', revenue: 35 }, timestamp: new Date('2023-12-15T10:00:00Z') })
// The same order again (a new messageId): updates, never adds.
analytics.track({ userId: 'node-1', event: 'Order Completed', properties: { order_id: 'n-o2', revenue: 35 }, timestamp: new Date('2023-12-15T10:00:00Z') })
analytics.track({ userId: 'node-1', event: 'Email Opened', properties: { campaign: 'winter' } })

analytics.closeAndFlush({ timeout: 10000 }).then(() => {
  if (failed) process.exit(1)
  console.log('sent')
})

import { describeConformance } from './conformance.ts';
import { fixture } from '../../harness/brokers/rabbitmq.ts';

describeConformance(fixture);

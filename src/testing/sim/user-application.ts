/**
 * An embedder's state machines and values as the simulator's application (see simulate.ts). The
 * simulator watches their executions like its own: every node life must execute the chosen values
 * in order, each once, every execution of one value must return an equal result, every
 * acknowledged proposal must have executed at its place on every node, and a state machine that
 * throws is reported (the library would retry it forever). Their own check runs last.
 */
import type { StateMachine } from '../../runtime/interfaces.js';
import { unframeValue } from '../../runtime/value-frame.js';
import { utf8 } from '../../util/bytes.js';
import { SeededRandom } from '../../util/random.js';
import { userEntriesOf, type AgreementChecker } from './checkers.js';
import type { SimApplication, SimProposal } from './sim-application.js';
import type { SimNode } from './sim-node.js';
import type { ChosenValue, SimulatedCluster, SimulatedNode, SimulateOptions, SimValue } from './simulate.js';

export function userApplication<M extends StateMachine>(
  options: SimulateOptions<M>, seed: number, groupCount: number,
): SimApplication {
  // The values come from a stream of their own: what the workload draws leaves the faults and the
  // schedule of the seed as they are.
  const values = new SeededRandom(seed * 2246822519 + 0x6d2b);
  const { check } = options;
  return {
    stateMachines: (groupIndex, process) => options.stateMachines(groupIndex, process),
    nextProposal: (_random, node, groupIndex) =>
      proposalOf(options.workload(values, { nodeId: node.id, groupIndex }), node, groupIndex),
    finalCheck: check === undefined ? undefined : async (nodes, agreement) => {
      const cluster: SimulatedCluster = {
        groupCount, chosen: (groupIndex, below = Infinity) => chosenValues(agreement, groupIndex, below),
      };
      try {
        await check(nodes.filter((node) => node.isUp).map((node) => simulatedNode<M>(node)), cluster);
        return undefined;
      } catch (error) {
        return `check failed: ${error instanceof Error ? error.message : String(error)}`;
      }
    },
  };
}

function proposalOf(value: SimValue, node: SimNode, groupIndex: number): SimProposal {
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const machines = node.stateMachinesOf(groupIndex);
    if (machines.length !== 1) {
      throw new Error(`group ${groupIndex} has ${machines.length} state machines: the workload must name one ` +
        '({ stateMachineId, value })');
    }
    return { stateMachineId: (machines[0] as StateMachine).id, payload: bytesOf(value) };
  }
  return { stateMachineId: value.stateMachineId, payload: bytesOf(value.value) };
}

function bytesOf(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? utf8(value) : value;
}

function simulatedNode<M extends StateMachine>(node: SimNode): SimulatedNode<M> {
  return {
    id: node.id,
    life: node.life,
    // They are the instances `stateMachines` returned for this life, so of its type.
    stateMachines: (groupIndex) => node.stateMachinesOf(groupIndex) as readonly M[],
    nowInstanceId: (groupIndex) => node.nowInstanceId(groupIndex) ?? 0,
  };
}

function chosenValues(agreement: AgreementChecker, groupIndex: number, below: number): ChosenValue[] {
  const chosen: ChosenValue[] = [];
  for (let instanceId = 0; instanceId < below; instanceId++) {
    const value = agreement.chosenValue(groupIndex, instanceId);
    if (value === undefined) break;
    for (const entry of userEntriesOf(value)) {
      const { stateMachineId, payload } = unframeValue(entry);
      chosen.push({ instanceId, stateMachineId, value: payload });
    }
  }
  return chosen;
}
